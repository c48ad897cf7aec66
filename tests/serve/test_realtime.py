"""test_realtime.py — the Realtime API's transcription sessions on
ws://.../v1/realtime through the official `openai` package
(client.realtime.connect, unchanged but for base_url):
  - manual turns (turn_detection null): a 24 kHz PCM16 clip appended in
    100 ms pieces and committed is transcribed exactly as `tolk transcribe`
    transcribes a 24 kHz WAV file of the same samples; deltas join to the
    completed transcript;
  - server VAD: speech followed by silence gives speech_started,
    speech_stopped, committed, and a completed transcript of the turn;
  - protocol errors answered by error events on a session that goes on
    (not JSON, unknown event, commit of an empty buffer, bad base64);
  - the limits with a plain WebSocket client (websockets, installed with
    openai[realtime]): a message over --ws_max_message_kb closes with 1009,
    a silent session closes after --ws_idle_s, a wrong key gets 401.

usage: python test_realtime.py /path/to/tolk"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serveutil import DECODE, Checks, Server, need_model, reference, shared, skip  # noqa: E402

try:
    import openai
    from websockets.sync.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
except ImportError:
    skip("openai[realtime] is not installed (tests/serve/venv.sh)")

need_model("tiny.en")
JFK = shared("speech/jfk.flac")
KEY = "sk-rt-test"

# the clip as 24 kHz PCM16 (what a Realtime client sends), and as a WAV file
pcm = subprocess.run(["sox", JFK, "-t", "raw", "-r", "24000", "-e", "signed", "-b", "16", "-c", "1", "-"],
                     capture_output=True, check=True).stdout
tmp = tempfile.mkdtemp(prefix="tolk-rt-")
wav = os.path.join(tmp, "jfk24k.wav")
with wave.open(wav, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(24000)
    w.writeframes(pcm)
ref = reference(wav, "tiny.en")["json"]["text"].strip()

c = Checks()
srv = Server(["--model", "tiny.en", "--api_key", KEY, "--ws_max_message_kb", "256", "--ws_idle_s", "3"] + DECODE,
             name="realtime")
client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)


def b64(b):
    return base64.b64encode(b).decode()


def until(conn, types, limit_s=600):
    """Events until one of types (inclusive)."""
    got = []
    t0 = time.time()
    while time.time() - t0 < limit_s:
        e = conn.recv()
        got.append(e)
        if e.type in types:
            return got
    raise TimeoutError(f"no {types} in {limit_s} s")


try:
    # -- manual turns
    with client.realtime.connect(model="tiny.en", extra_query={"intent": "transcription"}) as conn:
        first = conn.recv()
        c.equal(first.type, "session.created", "the first event is session.created")
        conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": None}}})
        ev = until(conn, {"session.updated", "error"})
        c.equal(ev[-1].type, "session.updated", "session.update is acknowledged")
        # protocol errors: each answered, the session goes on
        conn.send({"type": "input_audio_buffer.commit"})
        e = until(conn, {"error"})[-1]
        c.equal(e.error.code, "input_audio_buffer_commit_empty", "commit of an empty buffer: error event")
        conn.send({"type": "no.such.event"})
        e = until(conn, {"error"})[-1]
        c.equal(e.error.code, "invalid_event", "unknown event type: error event")
        conn.send({"type": "input_audio_buffer.append", "audio": "%%%"})
        e = until(conn, {"error"})[-1]
        c.equal(e.error.param, "audio", "bad base64: error event")
        for i in range(0, len(pcm), 4800):
            conn.input_audio_buffer.append(audio=b64(pcm[i:i + 4800]))
        conn.input_audio_buffer.commit()
        ev = until(conn, {"conversation.item.input_audio_transcription.completed",
                          "conversation.item.input_audio_transcription.failed"})
        types = [e.type for e in ev]
        c.check("input_audio_buffer.committed" in types, "commit: input_audio_buffer.committed")
        deltas = "".join(e.delta for e in ev if e.type.endswith(".delta"))
        done = ev[-1]
        c.equal(done.type, "conversation.item.input_audio_transcription.completed", "the item completes")
        c.equal(done.transcript, ref, "transcript equals tolk transcribe of the same 24 kHz samples")
        c.equal(deltas, done.transcript, "the deltas join to the transcript")

    # -- server VAD: the clip, then 1.5 s of silence
    with client.realtime.connect(model="tiny.en", extra_query={"intent": "transcription"}) as conn:
        until(conn, {"session.created"})
        conn.session.update(session={"type": "transcription", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                               "silence_duration_ms": 500}}}})
        until(conn, {"session.updated"})
        audio = pcm + b"\0" * (24000 * 2 * 3 // 2)
        for i in range(0, len(audio), 9600):
            conn.input_audio_buffer.append(audio=b64(audio[i:i + 9600]))
        ev = until(conn, {"conversation.item.input_audio_transcription.completed"})
        types = [e.type for e in ev]
        for t in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                  "input_audio_buffer.committed"):
            c.check(t in types, f"server VAD: {t}")
        started = next(e for e in ev if e.type == "input_audio_buffer.speech_started")
        stopped = next(e for e in ev if e.type == "input_audio_buffer.speech_stopped")
        c.check(0 <= started.audio_start_ms < 1000 and 10500 <= stopped.audio_end_ms <= 12600,
                f"server VAD: turn {started.audio_start_ms}..{stopped.audio_end_ms} ms")
        words = set(ev[-1].transcript.lower().replace(",", "").replace(".", "").split())
        c.check(len(words & {"fellow", "americans", "country", "ask"}) == 4,
                f"server VAD: the turn's transcript ({ev[-1].transcript!r})")

    # -- limits, with a plain WebSocket client
    url = srv.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    try:
        ws_connect(url, additional_headers={"Authorization": "Bearer nope"}, open_timeout=30)
        c.check(False, "wrong key: handshake refused")
    except InvalidStatus as e:
        c.equal(e.response.status_code, 401, "wrong key: handshake refused with 401")
    with ws_connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}, max_size=None) as ws:
        json.loads(ws.recv(timeout=30))
        ws.send("{not json")
        c.equal(json.loads(ws.recv(timeout=30))["error"]["code"], "invalid_json", "not JSON: error event")
        big = json.dumps({"type": "input_audio_buffer.append", "audio": b64(b"\0" * 300000)})
        try:
            ws.send(big)
            while True:
                ws.recv(timeout=30)
        except ConnectionClosed as e:
            c.equal(e.rcvd.code if e.rcvd else None, 1009, "a message over the limit: close 1009")
    with ws_connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        json.loads(ws.recv(timeout=30))
        t0 = time.time()
        msgs = []
        try:
            while True:
                msgs.append(json.loads(ws.recv(timeout=30)))
        except ConnectionClosed as e:
            c.check(2.5 < time.time() - t0 < 15 and e.rcvd and e.rcvd.code == 1000,
                    f"a silent session is closed after --ws_idle_s ({time.time() - t0:.1f} s)")
        c.check(msgs and msgs[-1]["error"]["code"] == "idle_timeout", "idle: an error event says why")
    c.check(srv.metric("tolk_realtime_sessions_total") >= 4, "metrics: realtime sessions counted")
    c.check(srv.metric("tolk_realtime_items_total") >= 2, "metrics: realtime items counted")
finally:
    rc = srv.stop()
c.equal(rc, 0, "SIGTERM: the server exits 0")
c.done(srv)
