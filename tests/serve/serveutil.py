"""serveutil.py — helpers of the `tolk serve` tests (tests/serve/*.py): the
paths (tolk, shared data, models), a server process on a free loopback port,
reference outputs of `tolk transcribe` / `tolk translate`, and a skip that
CTest reports as skipped (exit status 77) unless TOLK_REQUIRE_MODELS=1.

Every test runs on 127.0.0.1 only, starts its own servers with --port 0 and
stops them itself; each wait is bounded."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TOLK_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))


def skip(msg):
    if os.environ.get("TOLK_REQUIRE_MODELS") == "1":
        print(f"FAIL (required): {msg}")
        sys.exit(1)
    print(f"SKIP: {msg}")
    sys.exit(77)


def tolk():
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} /path/to/tolk")
    return os.path.abspath(sys.argv[1])


def shared(rel):
    base = os.environ.get("TOLK_DATA") or os.path.join(SRC, "data")
    p = os.path.join(base, rel)
    if not os.path.exists(p):
        skip(f"data/{rel} not found (TOLK_DATA)")
    return p


def models_dir():
    return os.environ.get("TOLK_MODELS") or os.path.expanduser("~/.cache/tolk/models")


def need_model(name):
    p = os.path.join(models_dir(), name)
    if not os.path.isdir(p):
        skip(f"model {name} not installed (scripts/get-model {name})")
    return p


# Greedy decoding keeps the tests short on small CI machines; the references
# use the same options, so transcripts must be equal.
DECODE = ["--beam_size", "None", "--best_of", "None"]


class Server:
    """A `tolk serve` process on 127.0.0.1 with a free port."""

    def __init__(self, args, name="serve", env=None, wait_s=180, port=0):
        self.dir = tempfile.mkdtemp(prefix=f"tolk-{name}-")
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "server.log")
        self.log_f = open(self.log_path, "wb")
        cmd = [tolk(), "serve", "--port", str(port), "--port_file", self.port_file] + list(args)
        e = dict(os.environ)
        e.setdefault("TOLK_MODELS", models_dir())
        if env:
            e.update(env)
        self.proc = subprocess.Popen(cmd, stdout=self.log_f, stderr=subprocess.STDOUT, env=e)
        t0 = time.time()
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tolk serve exited with {self.proc.returncode}:\n{self.log()}")
            if time.time() - t0 > wait_s:
                self.kill()
                raise RuntimeError(f"tolk serve did not start in {wait_s} s:\n{self.log()}")
            time.sleep(0.1)
        self.port = int(open(self.port_file).read())
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        self.log_f.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=180):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.status, r.read().decode()

    def metric(self, name, labels=None):
        """The value of one sample of /metrics (0 when absent)."""
        _, text = self.get("/metrics")
        want = name if not labels else name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0


def reference(clip, model, task="transcribe", extra=()):
    """`tolk transcribe|translate` outputs of clip: {"json": dict, "srt": str,
    "vtt": str, "txt": str}."""
    out = tempfile.mkdtemp(prefix="tolk-ref-")
    cmd = [tolk(), task, "--model", model, "--verbose", "False", "-o", out, "-f", "all"] + DECODE + list(extra) + [clip]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TOLK_MODELS": models_dir()}, timeout=600)
    base = os.path.splitext(os.path.basename(clip))[0]
    res = {}
    for ext in ("json", "srt", "vtt", "txt"):
        with open(os.path.join(out, f"{base}.{ext}"), encoding="utf-8") as f:
            res[ext] = json.load(f) if ext == "json" else f.read()
    return res


class Checks:
    """Collects failures so one run reports them all."""

    def __init__(self):
        self.failed = []

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.failed.append(what)

    def equal(self, a, b, what):
        ok = a == b
        self.check(ok, what)
        if not ok:
            print(f"     got:  {a!r}\n     want: {b!r}", flush=True)

    def done(self, *servers):
        if self.failed:
            for s in servers:
                print(f"--- server log ({s.log_path}):\n{s.log()[-6000:]}")
            print(f"{len(self.failed)} checks failed")
            sys.exit(1)
        print("all checks passed")
        sys.exit(0)
