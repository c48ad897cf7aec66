"""test_faults.py — bad clients and bad requests against `tolk serve`, at the
socket level: each fails alone with an OpenAI-shaped error (or a closed
connection where nobody is left to answer), the server keeps serving the
others and never crashes.
  - client gone mid-upload, while its request decodes, and mid-stream
    (the engine request is cancelled);
  - malformed multipart, multipart without a boundary, wrong content type,
    a body that is not audio, audio over --max_audio_s;
  - a body over --max_body_mb (413, read by the client: no reset), and
    with `Expect: 100-continue` (413 before the body);
  - slow headers (closed after --read_timeout_s while others are served),
    oversized headers, unknown paths and methods;
  - overload: more requests than --max_concurrent / the engine queue
    (429 / 503 with Retry-After, never a dropped connection).

usage: python test_faults.py /path/to/tolk"""
import concurrent.futures as cf
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serveutil import DECODE, Checks, Server, need_model, shared  # noqa: E402

need_model("tiny.en")
JFK = shared("speech/jfk.flac")
SHORT = shared("speech/en/librispeech/test-clean_1221-135766-0002.flac")
tmp = tempfile.mkdtemp(prefix="tolk-faults-")
# a request that is still decoding when its client leaves: jfk 30 times over (5.5 minutes, 8 kHz
# 8-bit: ~1.3 MB; tiny.en decodes one jfk in a fraction of a second on a current CPU)
BUSY = os.path.join(tmp, "jfk30.flac")
subprocess.run(["sox"] + [JFK] * 30 + ["-r", "8000", "-c", "1", "-b", "8", BUSY], check=True)
# over --max_audio_s (400 s): jfk 40 times over, 7.3 minutes in ~1.7 MB
LONG = os.path.join(tmp, "jfk40.flac")
subprocess.run(["sox"] + [JFK] * 40 + ["-r", "8000", "-c", "1", "-b", "8", LONG], check=True)

c = Checks()
srv = Server(["--model", "tiny.en", "--max_body_mb", "2", "--read_timeout_s", "2", "--max_audio_s", "400",
              "--max_header_kb", "16", "--max_requests", "1", "--max_queue", "1", "--max_concurrent", "3"] + DECODE,
             name="faults")


def multipart(fields, file_bytes=None, filename="a.flac"):
    b = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    if file_bytes is not None:
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     f'Content-Type: application/octet-stream\r\n\r\n'.encode() + file_bytes + b"\r\n")
    parts.append(f"--{b}--\r\n".encode())
    return f"multipart/form-data; boundary={b}", b"".join(parts)


def request(method, path, body=b"", headers=None, timeout=600):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def post_audio(path, fields=None, extra_headers=None):
    ct, body = multipart({"model": "tiny.en", **(fields or {})}, open(path, "rb").read())
    return request("POST", "/v1/audio/transcriptions", body, {"Content-Type": ct, **(extra_headers or {})})


def error_of(status_headers_body):
    st, _, body = status_headers_body
    try:
        e = json.loads(body)["error"]
        return st, e.get("code"), e.get("param")
    except (ValueError, KeyError, TypeError):
        return st, body[:80], None


def wait_for(fn, limit_s, what):
    t0 = time.time()
    while time.time() - t0 < limit_s:
        if fn():
            c.check(True, what)
            return
        time.sleep(0.25)
    c.check(False, f"{what} (not within {limit_s} s)")


def valid_request(what):
    st, _, body = post_audio(SHORT)
    c.check(st == 200 and json.loads(body)["text"], f"{what}: a valid request is still served")


try:
    valid_request("at start")
    cancelled0 = srv.metric("tolk_engine_requests_total", {"model": "tiny.en", "result": "cancelled"})

    # -- client gone mid-upload
    ct, body = multipart({"model": "tiny.en"}, open(JFK, "rb").read()[:800000])
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:300000])
    time.sleep(0.5)
    s.close()
    wait_for(lambda: srv.metric("tolk_requests_in_flight") == 0, 30, "client gone mid-upload: its slot is freed")

    # -- client gone while its request decodes, and mid-stream: cancelled
    for fields, what in (({}, "while decoding"), ({"stream": "true"}, "mid-stream")):
        ct, body = multipart({"model": "tiny.en", **fields}, open(BUSY, "rb").read())
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        if fields:
            s.settimeout(120)
            head = s.recv(200)
            c.check(head.startswith(b"HTTP/1.1 200"), "stream: the answer starts")
        else:
            wait_for(lambda: srv.metric("tolk_engine_active_requests", {"model": "tiny.en"}) >= 1, 120,
                     "the request reaches the engine")
        s.close()
        n = cancelled0 + (1 if not fields else 2)
        wait_for(lambda: srv.metric("tolk_engine_requests_total", {"model": "tiny.en", "result": "cancelled"}) >= n,
                 180, f"client gone {what}: the engine request is cancelled")
    c.check(srv.metric("tolk_client_gone_total") >= 2, "metrics: clients gone counted")

    # -- bad requests, each alone
    ct, body = multipart({"model": "tiny.en"}, b"")
    bad = b"--XYZ\r\nthis is not a form at all\r\n\x00\x01\x02"
    c.equal(error_of(request("POST", "/v1/audio/transcriptions", bad,
                             {"Content-Type": "multipart/form-data; boundary=XYZ"}))[0], 400,
            "malformed multipart: 400")
    c.equal(error_of(request("POST", "/v1/audio/transcriptions", b"x=1",
                             {"Content-Type": "multipart/form-data"}))[:2], (400, "invalid_content_type"),
            "multipart without a boundary: 400")
    c.equal(error_of(request("POST", "/v1/audio/transcriptions", b'{"model": "x"}',
                             {"Content-Type": "application/json"}))[:2], (400, "invalid_content_type"),
            "wrong content type: 400")
    ct, body = multipart({"model": "tiny.en"}, b"hello, this is a text file, not audio\n" * 50, "notes.mp3")
    c.equal(error_of(request("POST", "/v1/audio/transcriptions", body, {"Content-Type": ct})),
            (400, "invalid_value", "file"), "a body that is not audio: 400 on 'file'")
    ct, body = multipart({"model": "tiny.en"})
    c.equal(error_of(request("POST", "/v1/audio/transcriptions", body, {"Content-Type": ct})),
            (400, "missing_required_parameter", "file"), "no file: 400")
    c.equal(error_of(post_audio(LONG))[:2], (400, "audio_too_long"), "audio over --max_audio_s: 400")
    big = open(LONG, "rb").read()
    big = big * (1 + 3_000_000 // len(big))
    r = post_audio_big = None
    ct, body = multipart({"model": "tiny.en"}, big)
    try:
        r = error_of(request("POST", "/v1/audio/transcriptions", body, {"Content-Type": ct}))
    except OSError as e:
        r = ("connection error", str(e))
    c.equal(r[:2], (413, "request_too_large"), "a body over --max_body_mb: 413, answered")
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.settimeout(30)
    s.sendall(f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\n"
              f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
    head = s.recv(4096)
    s.close()
    c.check(head.startswith(b"HTTP/1.1 413"), f"Expect: 100-continue: 413 before the body ({head[:20]!r})")
    st, hdr, body = request("GET", "/v1/audio/transcriptions")
    c.equal(st, 405, "GET on an audio endpoint: 405")
    c.equal(error_of(request("GET", "/v1/nothing/here"))[0], 404, "unknown path: 404")
    try:
        st = request("GET", "/health", headers={"X-Big": "a" * 40000})[0]
    except OSError as e:
        st = str(e)
    c.check(st in (413, 431), f"headers over --max_header_kb: refused ({st})")

    # -- slow headers: the connection is closed, the others are served meanwhile
    slow = socket.create_connection(("127.0.0.1", srv.port))
    slow.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Ty")
    t0 = time.time()
    with cf.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(valid_request, "with a slow client connected")
        slow.settimeout(30)
        try:
            rest = slow.recv(100)
        except socket.timeout:
            rest = None
        closed_after = time.time() - t0
        fut.result()
    c.check(rest is not None and (rest == b"" or rest.startswith(b"HTTP/1.1 408")) and closed_after < 20,
            f"slow headers: closed by the server after --read_timeout_s ({closed_after:.1f} s, {rest!r})")
    slow.close()

    # -- overload: 429 / 503 with Retry-After, every connection answered
    with cf.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(post_audio, SHORT) for _ in range(8)]
        results = []
        for f in futs:
            try:
                results.append(f.result())
            except OSError as e:
                results.append(("dropped", {}, str(e).encode()))
    statuses = sorted(r[0] for r in results if isinstance(r[0], int))
    c.check(len(statuses) == 8, f"overload: every request answered ({[r[0] for r in results]})")
    c.check(all(s in (200, 429, 503) for s in statuses) and statuses.count(200) >= 1,
            f"overload: 200 or 429 / 503 ({statuses})")
    refused = [r for r in results if r[0] in (429, 503)]
    c.check(len(refused) >= 1 and all(int(r[1].get("Retry-After", "0")) >= 1 for r in refused),
            "overload: refusals carry Retry-After")
    c.check(all(error_of(r)[1] in ("rate_limit_exceeded", "server_overloaded") for r in refused),
            "overload: refusals are OpenAI errors")
    valid_request("after all of it")
finally:
    rc = srv.stop()
c.equal(rc, 0, "SIGTERM: the server exits 0")
c.done(srv)
