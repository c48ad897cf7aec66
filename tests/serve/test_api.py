"""test_api.py — the official `openai` package (unchanged, base_url only)
against `tolk serve`: /v1/models, transcriptions and translations in every
response format (json, text, srt, vtt, verbose_json), streaming
(stream=True: transcript.text.delta / .done events), the errors the
client raises (word timestamps, unknown model, bad values, API key), and
/health and /metrics. Every transcript must equal what `tolk transcribe`
/ `tolk translate` give for the same file with the same options.

One server serves tiny.en and base (so `model` must name one); the
requests of each group are sent at once, so they also share the engine's
batches.

usage: python test_api.py /path/to/tolk"""
import concurrent.futures as cf
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serveutil import DECODE, Checks, Server, need_model, reference, shared, skip  # noqa: E402

try:
    import openai
except ImportError:
    skip("the openai package is not installed (tests/serve/venv.sh)")

need_model("tiny.en")
need_model("base")
JFK = shared("speech/jfk.flac")
SHORT = shared("speech/en/librispeech/test-clean_1221-135766-0002.flac")
ES = shared("speech/multi/asterisk_es/conf-getpin.flac")
FORMATS = ["json", "text", "srt", "vtt", "verbose_json"]
KEY = "sk-test-7f1e"

c = Checks()
srv = Server(["--model", "tiny.en,base", "--api_key", KEY] + DECODE, name="api")
client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0, timeout=600)
try:
    # -- models
    ids = sorted(m.id for m in client.models.list())
    c.equal(ids, ["base", "tiny.en"], "GET /v1/models lists the served models by name")
    c.equal(client.models.retrieve("base").id, "base", "GET /v1/models/base")

    # -- the references
    with cf.ThreadPoolExecutor(3) as ex:
        ref_jfk = ex.submit(reference, JFK, "tiny.en")
        ref_short = ex.submit(reference, SHORT, "tiny.en", "translate")
        ref_es = ex.submit(reference, ES, "base", "translate")
        ref_jfk, ref_short, ref_es = ref_jfk.result(), ref_short.result(), ref_es.result()

    # -- every format of both endpoints, and a stream, all at once
    def transcribe(fmt):
        with open(JFK, "rb") as f:
            return client.audio.transcriptions.create(model="tiny.en", file=f, response_format=fmt)

    def translate(fmt):
        with open(SHORT, "rb") as f:
            return client.audio.translations.create(model="tiny.en", file=f, response_format=fmt)

    def stream():
        with open(JFK, "rb") as f:
            return [e for e in client.audio.transcriptions.create(model="tiny.en", file=f, stream=True)]

    def translate_es():
        with open(ES, "rb") as f:
            return client.audio.translations.create(model="base", file=f, response_format="verbose_json")

    with cf.ThreadPoolExecutor(16) as ex:
        tr = {f: ex.submit(transcribe, f) for f in FORMATS}
        tl = {f: ex.submit(translate, f) for f in FORMATS}
        st = ex.submit(stream)
        es = ex.submit(translate_es)
        tr = {f: v.result() for f, v in tr.items()}
        tl = {f: v.result() for f, v in tl.items()}
        st = st.result()
        es = es.result()

    for name, got, ref in (("transcriptions", tr, ref_jfk), ("translations", tl, ref_short)):
        text = ref["json"]["text"].strip()
        c.equal(got["json"].text, text, f"{name} json: text equals tolk's")
        c.equal(got["text"], text + "\n", f"{name} text: the transcript and a newline")
        c.equal(got["srt"], ref["srt"], f"{name} srt: the bytes of tolk's srt writer")
        c.equal(got["vtt"], ref["vtt"], f"{name} vtt: the bytes of tolk's vtt writer")
        v = got["verbose_json"]
        c.equal(v.text, text, f"{name} verbose_json: text")
        c.equal(v.language, "english", f"{name} verbose_json: language by name")
        rs = ref["json"]["segments"]
        c.equal(len(v.segments), len(rs), f"{name} verbose_json: as many segments")
        for a, b in zip(v.segments, rs):
            c.equal((a.id, a.seek, a.start, a.end, a.text, a.tokens),
                    (b["id"], b["seek"], round(b["start"], 3), round(b["end"], 3), b["text"], b["tokens"]),
                    f"{name} verbose_json: segment {b['id']} equals tolk's")
            c.check(abs(a.avg_logprob - b["avg_logprob"]) < 1e-5 and a.temperature == b["temperature"],
                    f"{name} verbose_json: segment {b['id']} scores")

    types = [e.type for e in st]
    c.check(types and types[-1] == "transcript.text.done" and set(types[:-1]) == {"transcript.text.delta"},
            f"stream: deltas then done ({types})")
    c.equal("".join(e.delta for e in st[:-1]), st[-1].text, "stream: the deltas join to the done text")
    c.equal(st[-1].text, ref_jfk["json"]["text"].strip(), "stream: the done text equals tolk's")

    c.equal(es.text, ref_es["json"]["text"].strip(), "translations with base (es -> en) equal tolk translate")
    c.equal(es.task, "translate", "verbose_json task of a translation")
    c.equal(es.language, "spanish", "the detected language of the Spanish clip")

    # -- errors as the client raises them
    def error_of(fn):
        try:
            fn()
        except openai.APIStatusError as e:
            return e.status_code, (e.body or {}).get("code"), (e.body or {}).get("param")
        return None

    def post(**kw):
        with open(SHORT, "rb") as f:
            return client.audio.transcriptions.create(file=f, **kw)

    # -- word timestamps (verbose_json, timestamp_granularities=["word"]): words only, or both
    w = post(model="tiny.en", response_format="verbose_json", timestamp_granularities=["word"])
    words = getattr(w, "words", None) or []
    c.check(len(words) >= 3 and all(x.start <= x.end for x in words) and
            all(words[i].start <= words[i + 1].start for i in range(len(words) - 1)),
            f"word timestamps: {len(words)} words in time order")
    c.check(" ".join(x.word for x in words).replace(" ,", ",") != "" and not getattr(w, "segments", None),
            "word timestamps alone: words, no segments")
    wb = post(model="tiny.en", response_format="verbose_json", timestamp_granularities=["word", "segment"])
    c.check(getattr(wb, "words", None) and getattr(wb, "segments", None), "words and segments together")
    c.equal(error_of(lambda: post(model="tiny.en", response_format="json", timestamp_granularities=["word"])),
            (400, "invalid_value", "timestamp_granularities"), "word timestamps need verbose_json")
    c.equal(error_of(lambda: post(model="whisper-1")), (400, "model_not_found", "model"),
            "with two models, an unknown name is refused")
    c.equal(error_of(lambda: post(model="tiny.en", response_format="diarized_json")),
            (400, "invalid_value", "response_format"), "unknown response_format")
    c.equal(error_of(lambda: post(model="tiny.en", temperature=3)), (400, "invalid_value", "temperature"),
            "temperature out of range")
    c.equal(error_of(lambda: post(model="base", language="xx")), (400, "invalid_value", "language"),
            "unknown language")
    bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-wrong", max_retries=0)
    c.equal(error_of(lambda: bad.models.list()), (401, "invalid_api_key", None), "wrong API key: 401")
    try:
        bad.models.list()
    except openai.AuthenticationError:
        c.check(True, "the client raises AuthenticationError")

    # -- health and metrics (open without the key, for balancers and scrapers)
    status, body = srv.get("/health")
    c.equal((status, json.loads(body)["status"]), (200, "ok"), "GET /health")
    c.check(srv.metric("tolk_http_requests_total", {"endpoint": "transcriptions", "status": "200"}) >= 6,
            "metrics: transcriptions answered 200")
    c.check(srv.metric("tolk_http_requests_total", {"endpoint": "translations", "status": "200"}) >= 6,
            "metrics: translations answered 200")
    c.check(srv.metric("tolk_audio_seconds_total") > 60, "metrics: audio seconds")
    c.check(srv.metric("tolk_request_duration_seconds_count") >= 12, "metrics: latency histogram")
    c.check(srv.metric("tolk_engine_decoder_batch_size_count", {"model": "tiny.en"}) > 0,
            "metrics: decoder batch-size histogram")
    _, text = srv.get("/metrics")
    c.check("tolk_engine_queue_depth{model=\"base\"}" in text, "metrics: queue depth per model")
finally:
    rc = srv.stop()
c.equal(rc, 0, "SIGTERM: the server exits 0")
c.done(srv)
