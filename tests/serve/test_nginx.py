"""test_nginx.py — deploy/nginx/tolk.conf in front of two `tolk serve`
instances, all on loopback (nginx from Debian, run unprivileged-style from a
temporary prefix):
  - requests through nginx spread over both instances; streaming
    (server-sent events) and a realtime WebSocket session pass through;
  - an instance stopped with SIGTERM during a burst of requests: every
    request is answered 200 (the draining instance finishes what it took,
    refuses the rest, nginx sends those to the other) and it exits 0;
  - an instance killed (SIGKILL) during a burst: nginx retries what the
    dead instance had not answered on the other one, so no request fails,
    and new requests go to the live instance.

usage: python test_nginx.py /path/to/tolk"""
import base64
import concurrent.futures as cf
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serveutil import DECODE, SRC, Checks, Server, need_model, reference, shared, skip  # noqa: E402

try:
    import openai
    from websockets.sync.client import connect as ws_connect
except ImportError:
    skip("openai[realtime] is not installed (tests/serve/venv.sh)")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
if not NGINX:
    skip("nginx is not installed (scripts/setup-deps installs nginx-light)")

need_model("tiny.en")
CLIP = shared("speech/en/pocketsphinx/goforward.flac")
ref = reference(CLIP, "tiny.en")["json"]["text"].strip()
pcm = subprocess.run(["sox", CLIP, "-t", "raw", "-r", "24000", "-e", "signed", "-b", "16", "-c", "1", "-"],
                     capture_output=True, check=True).stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def instance(name, port=0):
    args = ["--model", "tiny.en", "--max_requests", "4", "--drain_timeout_s", "300"] + DECODE
    return Server(args, name=name) if not port else Server(args, name=name, port=port)


class Nginx:
    def __init__(self, ports):
        self.dir = tempfile.mkdtemp(prefix="tolk-nginx-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        conf = open(os.path.join(SRC, "deploy", "nginx", "tolk.conf")).read()
        lines = []
        for line in conf.splitlines():
            if "# TOLK_UPSTREAMS" in line:
                lines += [f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;" for p in ports]
                continue
            if line.strip().startswith("server 127.0.0.1:"):
                continue
            if "# TOLK_LISTEN" in line:
                line = f"    listen 127.0.0.1:{self.port};"
            lines.append(line)
        open(os.path.join(self.dir, "tolk.conf"), "w").write("\n".join(lines) + "\n")
        d = self.dir
        main = (f"worker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n"
                f"  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n"
                f"  scgi_temp_path {d}/scgi;\n  include {d}/tolk.conf;\n}}\n")
        open(os.path.join(d, "nginx.conf"), "w").write(main)
        self.proc = subprocess.Popen([NGINX, "-p", d, "-c", f"{d}/nginx.conf", "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "wb"))
        t0 = time.time()
        while time.time() - t0 < 30:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("nginx failed: " + open(f"{d}/stderr").read() + open(f"{d}/error.log").read())
                time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def served(srv):
    return srv.metric("tolk_http_requests_total", {"endpoint": "transcriptions", "status": "200"})


c = Checks()
a = instance("nginx-a")
b = instance("nginx-b")
ng = Nginx([a.port, b.port])
client = openai.OpenAI(base_url=ng.url + "/v1", api_key="none", max_retries=0, timeout=900)


def transcribe(_=None):
    try:
        with open(CLIP, "rb") as f:
            return client.audio.transcriptions.create(model="whisper-1", file=f).text
    except Exception as e:  # counted as a failure
        return f"FAILED: {type(e).__name__}: {e}"


def burst(n, during=None):
    """n requests at once; during() runs once they are under way."""
    with cf.ThreadPoolExecutor(n) as ex:
        futs = [ex.submit(transcribe) for _ in range(n)]
        if during:
            during()
        return [f.result() for f in futs]


try:
    # -- spread, streaming, realtime
    got = burst(8)
    c.equal(got, [ref] * 8, "8 requests through nginx: all answered, equal to tolk transcribe")
    c.check(served(a) >= 1 and served(b) >= 1, f"they spread over both instances ({served(a):.0f} + {served(b):.0f})")
    with open(CLIP, "rb") as f:
        ev = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
    c.equal(ev[-1].text if ev else None, ref, "streaming passes through nginx")
    with ws_connect(ng.url.replace("http", "ws") + "/v1/realtime?intent=transcription", open_timeout=30) as ws:
        json.loads(ws.recv(timeout=30))
        ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription",
                                                                  "audio": {"input": {"turn_detection": None}}}}))
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}))
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        done = None
        while done is None:
            e = json.loads(ws.recv(timeout=600))
            if e["type"] == "conversation.item.input_audio_transcription.completed":
                done = e["transcript"]
        c.check(bool(done), f"a realtime session through nginx (WebSocket upgrade): {done!r}")

    # -- SIGTERM one instance during a burst: nothing is lost
    def stop_b():
        t0 = time.time()
        while b.metric("tolk_engine_active_requests", {"model": "tiny.en"}) < 1 and time.time() - t0 < 120:
            time.sleep(0.1)
        b.proc.send_signal(signal.SIGTERM)

    got = burst(8, stop_b)
    fails = [g for g in got if g != ref]
    c.check(not fails, f"SIGTERM of an instance under load: 8 of 8 answered ({fails[:2]})")
    try:
        rc = b.proc.wait(300)
    except subprocess.TimeoutExpired:
        rc = None
    c.equal(rc, 0, "the stopped instance drains and exits 0")
    before = served(a)
    c.equal(burst(4), [ref] * 4, "new requests go to the other instance")
    c.check(served(a) - before >= 4, "... which served them")

    # -- SIGKILL one instance during a burst (the other one back first)
    b = instance("nginx-b2", port=b.port)
    time.sleep(6)  # past fail_timeout: nginx tries b again
    before = served(b)
    c.equal(burst(4), [ref] * 4, "the restarted instance is back in the pool")
    c.check(served(b) > before, "... and takes requests again")

    def kill_a():
        t0 = time.time()
        while a.metric("tolk_engine_active_requests", {"model": "tiny.en"}) < 1 and time.time() - t0 < 120:
            time.sleep(0.1)
        a.proc.kill()

    got = burst(8, kill_a)
    fails = [g for g in got if g != ref]
    c.check(not fails, f"SIGKILL of an instance under load: nginx retries on the other one ({len(fails)} failed)")
    c.equal(burst(4), [ref] * 4, "after the kill, new requests are served by the live instance")
finally:
    ng.stop()
    for s in (a, b):
        s.stop()
c.done(a, b)
