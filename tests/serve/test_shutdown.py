"""test_shutdown.py — SIGTERM while requests are in flight: `tolk serve`
stops accepting at once (new connections are refused), answers requests
that arrive on open connections with 503 (and /health with 503, so a
balancer stops sending), finishes the transcription in flight and the
realtime item already committed (then closes the session with 1001), and
exits 0.

usage: python test_shutdown.py /path/to/tolk"""
import base64
import concurrent.futures as cf
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serveutil import DECODE, Checks, Server, need_model, reference, shared, skip  # noqa: E402

try:
    import openai
    from websockets.sync.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed
except ImportError:
    skip("openai[realtime] is not installed (tests/serve/venv.sh)")

need_model("tiny.en")
JFK = shared("speech/jfk.flac")
SHORT = shared("speech/en/librispeech/test-clean_1221-135766-0002.flac")
# the transcription in flight must outlast the checks made after SIGTERM (one
# second and more): jfk 30 times over (5.5 minutes; tiny.en decodes one jfk in
# a fraction of a second, and the server exits as soon as nothing is in flight)
TMP = tempfile.mkdtemp(prefix="tolk-shutdown-")
LONG = os.path.join(TMP, "jfk-x30.flac")
subprocess.run(["sox"] + [JFK] * 30 + ["-r", "16000", "-c", "1", LONG], check=True)
ref = reference(LONG, "tiny.en")["json"]["text"].strip()
pcm = subprocess.run(["sox", SHORT, "-t", "raw", "-r", "24000", "-e", "signed", "-b", "16", "-c", "1", "-"],
                     capture_output=True, check=True).stdout

c = Checks()
srv = Server(["--model", "tiny.en", "--drain_timeout_s", "300"] + DECODE, name="shutdown")
client = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=600)
try:
    # an open keep-alive connection, a realtime session with a committed turn,
    # and a transcription in flight
    keep = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    keep.request("GET", "/health")
    r = keep.getresponse()
    r.read()
    c.equal(r.status, 200, "before: /health 200")
    ws = ws_connect(srv.url.replace("http", "ws") + "/v1/realtime?intent=transcription", open_timeout=30)
    json.loads(ws.recv(timeout=30))
    ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"turn_detection": None}}}}))
    json.loads(ws.recv(timeout=30))

    def transcribe():
        with open(LONG, "rb") as f:
            return client.audio.transcriptions.create(model="tiny.en", file=f).text

    ex = cf.ThreadPoolExecutor(1)
    fut = ex.submit(transcribe)
    t0 = time.time()
    while srv.metric("tolk_engine_active_requests", {"model": "tiny.en"}) < 1 and time.time() - t0 < 120:
        time.sleep(0.2)
    ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}))
    ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    while True:
        if json.loads(ws.recv(timeout=60))["type"] == "input_audio_buffer.committed":
            break

    srv.proc.send_signal(15)
    time.sleep(1.0)
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
        refused = False
    except OSError:
        refused = True
    c.check(refused, "after SIGTERM: new connections are refused")
    keep.request("GET", "/health")
    r = keep.getresponse()
    body = r.read()
    c.equal((r.status, json.loads(body)["status"]), (503, "draining"), "an open connection: /health says draining")
    keep.close()

    c.equal(fut.result(timeout=600), ref, "the transcription in flight is finished and answered")
    events = []
    code = None
    try:
        while True:
            events.append(json.loads(ws.recv(timeout=600)))
    except ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else None
    types = [e["type"] for e in events]
    c.check("conversation.item.input_audio_transcription.completed" in types,
            "the committed realtime item is answered")
    c.equal(code, 1001, "then the session closes with 1001 (going away)")
    ex.shutdown()
    t0 = time.time()
    try:
        rc = srv.proc.wait(120)
    except Exception:
        rc = None
    c.equal(rc, 0, "the server exits 0 once they are done")
finally:
    srv.stop()
    shutil.rmtree(TMP, ignore_errors=True)
c.done(srv)
