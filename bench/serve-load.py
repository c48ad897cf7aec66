#!/usr/bin/env python3
"""serve-load.py — load on `tolk serve` and on faster-whisper-server (PyPI)
with the same clips, model and clients, in one run.

For each server and each level of concurrency (default 1, 16, 64, 256
clients), a fresh server process is started on loopback and answers one warm-up
request (faster-whisper-server loads its model then); every client posts
--requests clips (short shared English clips, round robin) with the
official `openai` package (max_retries=0, one client object per thread) and
answers a 429 / 503 by waiting Retry-After and posting again. Measured per
level: requests completed, refusals (429 / 503, as designed), failures
(anything else: a dropped connection, an error status, a timeout), audio
seconds per wall second, latency of the answered attempt and end to end
(with the waits after refusals) p50 / p99, the server's peak RSS (VmHWM),
and the load average around it (the machine may be shared: say so with
the figures).

usage: bench/serve-load.py --tolk build/tolk [--model base] [--levels 1,16,64,256]
       [--requests 1] [--fws-venv /path/venv] [--out bench/results/DATE-serve]
       [--tolk-args "--max_requests 16"] [--skip-fws] [--fws-levels 1,16]
The faster-whisper-server venv is made with
  python3 -m venv V && V/bin/pip install faster-whisper-server
and serves the same CTranslate2 directory (~/.cache/tolk/models/MODEL).
Needs the openai package in the Python running this script."""
import argparse
import concurrent.futures as cf
import csv
import datetime
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import openai

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def shared_dir():
    d = os.environ.get("TOLK_DATA") or os.path.join(SRC, "data")
    if os.path.isdir(d):
        return d
    sys.exit(f"serve-load: no data folder {d} (TOLK_DATA)")


def clips(max_s):
    """Short English clips of the shared set: (path, seconds)."""
    base = os.path.join(shared_dir(), "speech")
    out = []
    with open(os.path.join(base, "asr.tsv"), encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["language"] == "en" and float(row["duration_s"]) <= max_s:
                out.append((os.path.join(base, row["file"]), float(row["duration_s"])))
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def wait_http(url, proc, limit_s=300):
    import urllib.request
    t0 = time.time()
    while time.time() - t0 < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


class Tolk:
    name = "tolk"

    def __init__(self, a):
        self.a = a

    def start(self, log):
        port = free_port()
        cmd = [self.a.tolk, "serve", "--model", self.a.model, "--port", str(port), "--quiet"]
        if self.a.greedy:
            cmd += ["--beam_size", "None", "--best_of", "None"]
        cmd += self.a.tolk_args.split()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url, self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


class FasterWhisperServer:
    name = "faster-whisper-server"

    def __init__(self, a):
        self.a = a

    def start(self, log):
        port = free_port()
        exe = os.path.join(self.a.fws_venv, "bin", "faster-whisper-server")
        model = os.path.join(os.path.expanduser(self.a.models), self.a.model)
        # config mode: the decoding options (greedy: beam_size 1 as tolk's --beam_size None);
        # the model is named whisper-1, the name it reads from its form (field model_name)
        opts = {"beam_size": 1, "best_of": 1} if self.a.greedy else {}
        cfg = os.path.join(self.a.out, "fws-config.yaml")
        with open(cfg, "w") as f:
            f.write("models:\n  - name: whisper-1\n    path: " + json.dumps(model) + "\n"
                    "    transcribe_options: " + json.dumps(opts) + "\n")
        self.proc = subprocess.Popen([exe, "--config", cfg, "--host", "127.0.0.1", "--port", str(port)],
                                     stdout=log, stderr=log, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url, self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def run_level(server, n_clients, n_requests, clip_list, timeout_s):
    """n_clients threads, each posting n_requests clips. Returns stats."""
    lock = threading.Lock()
    res = {"ok": 0, "refused": 0, "failed": 0, "audio_s": 0.0, "lat": [], "e2e": [], "errors": []}
    start_gate = threading.Barrier(n_clients)

    def client(ci):
        c = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=timeout_s)
        try:
            start_gate.wait(60)
        except threading.BrokenBarrierError:
            pass
        for k in range(n_requests):
            path, dur = clip_list[(ci * n_requests + k) % len(clip_list)]
            t_first = time.time()
            while True:
                t0 = time.time()
                try:
                    with open(path, "rb") as f:
                        c.audio.transcriptions.create(model="whisper-1", file=f)
                    t1 = time.time()
                    with lock:
                        res["ok"] += 1
                        res["audio_s"] += dur
                        res["lat"].append(t1 - t0)
                        res["e2e"].append(t1 - t_first)
                    break
                except (openai.RateLimitError, openai.InternalServerError) as e:
                    if e.status_code not in (429, 503):
                        with lock:
                            res["failed"] += 1
                            res["errors"].append(f"{e.status_code}: {str(e)[:120]}")
                        break
                    with lock:
                        res["refused"] += 1
                    ra = e.response.headers.get("retry-after", "1")
                    time.sleep(min(30.0, max(0.2, float(ra))))
                    if time.time() - t_first > timeout_s:
                        with lock:
                            res["failed"] += 1
                            res["errors"].append("gave up after refusals")
                        break
                except Exception as e:  # a dropped connection, a timeout, another status
                    with lock:
                        res["failed"] += 1
                        res["errors"].append(f"{type(e).__name__}: {str(e)[:120]}")
                    break
        c.close()

    t0 = time.time()
    with cf.ThreadPoolExecutor(n_clients) as ex:
        list(ex.map(client, range(n_clients)))
    res["wall_s"] = time.time() - t0
    return res


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tolk", required=True)
    ap.add_argument("--model", default="base")
    ap.add_argument("--models", default=os.environ.get("TOLK_MODELS", "~/.cache/tolk/models"))
    ap.add_argument("--levels", default="1,16,64,256")
    ap.add_argument("--requests", type=int, default=1, help="requests per client")
    ap.add_argument("--single-requests", type=int, default=8, help="requests of the 1-client level")
    ap.add_argument("--max-clip-s", type=float, default=6.0)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--tolk-args", default="")
    ap.add_argument("--fws-venv", default="")
    ap.add_argument("--fws-levels", default="", help="levels for faster-whisper-server (default: --levels)")
    ap.add_argument("--skip-fws", action="store_true")
    ap.add_argument("--greedy", action="store_true",
                    help="greedy decoding on both servers (default: their defaults, beam 5)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", datetime.date.today().isoformat() + "-serve"))
    a = ap.parse_args()
    a.tolk = os.path.abspath(a.tolk)
    os.makedirs(a.out, exist_ok=True)
    clip_list = clips(a.max_clip_s)
    levels = [int(x) for x in a.levels.split(",")]
    servers = [Tolk(a)]
    if not a.skip_fws and a.fws_venv:
        servers.append(FasterWhisperServer(a))
    rows = []
    for srv in servers:
        lv = levels
        if isinstance(srv, FasterWhisperServer) and a.fws_levels:
            lv = [int(x) for x in a.fws_levels.split(",")]
        for n in lv:
            reqs = a.single_requests if n == 1 else a.requests
            log = open(os.path.join(a.out, f"{srv.name}-{n}.log"), "wb")
            srv.start(log)
            warm = run_level(srv, 1, 1, clip_list[:1], a.timeout)  # the first request loads fws's model
            if warm["failed"]:
                print(f"{srv.name}: warm-up failed: {warm['errors']}", flush=True)
            load0 = os.getloadavg()
            print(f"{srv.name}: {n} clients x {reqs} requests ... (load {load0[0]:.1f})", flush=True)
            r = run_level(srv, n, reqs, clip_list, a.timeout)
            rss = peak_rss_mb(srv.proc.pid)
            load1 = os.getloadavg()
            rc = srv.stop()
            row = {"server": srv.name, "clients": n, "requests": n * reqs, "ok": r["ok"],
                   "refused_429_503": r["refused"], "failed": r["failed"], "wall_s": round(r["wall_s"], 2),
                   "audio_s": round(r["audio_s"], 2),
                   "audio_s_per_s": round(r["audio_s"] / r["wall_s"], 3) if r["wall_s"] > 0 else 0,
                   "lat_p50_s": round(pct(r["lat"], 0.5), 3), "lat_p99_s": round(pct(r["lat"], 0.99), 3),
                   "e2e_p50_s": round(pct(r["e2e"], 0.5), 3), "e2e_p99_s": round(pct(r["e2e"], 0.99), 3),
                   "peak_rss_mb": round(rss, 1), "exit": rc,
                   "load_before": round(load0[0], 2), "load_after": round(load1[0], 2),
                   "errors": r["errors"][:5]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(os.path.join(a.out, "results.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")
    base = {r["server"]: r["audio_s_per_s"] for r in rows if r["clients"] == 1}
    lines = ["| server | clients | requests | ok | refused (429/503) | failed | audio s / wall s | vs 1 client | "
             "p50 s | p99 s | e2e p50 s | e2e p99 s | peak RSS MiB | load avg before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        one = base.get(r["server"]) or float("nan")
        lines.append(f"| {r['server']} | {r['clients']} | {r['requests']} | {r['ok']} | {r['refused_429_503']} | "
                     f"{r['failed']} | {r['audio_s_per_s']:.2f} | {r['audio_s_per_s'] / one:.2f}x | "
                     f"{r['lat_p50_s']:.2f} | {r['lat_p99_s']:.2f} | {r['e2e_p50_s']:.2f} | {r['e2e_p99_s']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    table = "\n".join(lines)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
