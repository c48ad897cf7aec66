#!/usr/bin/env python3
"""bench/stream.py — live-streaming latency and accuracy of `tolk stream` against whisper_streaming.

Run through bench/stream (which picks the Python). One run:

1. input: the English clips of data/speech/asr.tsv (librispeech, ljspeech, pocketsphinx), in
   manifest order, concatenated with 0.3 s of silence between them until >= --min-seconds, with their
   reference text (input.wav, reference.txt, clips.json);
2. word end times: a forced alignment of the reference — faster-whisper (int8, --align-model,
   word_timestamps) on input.wav, its words matched to the reference words (difflib on normalised
   words; unmatched reference words get times interpolated from their neighbours);
3. tolk: `tolk stream input.wav --realtime --wall` (the file fed at 1x speed, a simulated microphone)
   with the fast policy and with LocalAgreement-2; whisper_streaming (ufal/whisper_streaming's
   whisper_online.py, LocalAgreement-2 over faster-whisper int8 on the CPU, its defaults: min chunk
   1 s, segment trimming at 15 s) on the same file and model in the same run;
4. per reference word: commit latency = wall-clock time of the commit (seconds since the first sample
   was fed) - the time the word ends in the audio, for the reference words matched by a committed
   word; median and p90; first-text latency after each clip's speech onset (tolk: the first partial
   or final with text; whisper_streaming has no partials: its first commit) — and after each clip's
   speech onset in the audio (Silero VAD, `tolk vad` with 100 ms silences and no padding: the aligned
   first word often starts 0.3-0.5 s before the speech does), counting only text that starts after the
   onset (less 0.35 s: tolk's pre-roll); WER (Whisper's English
   normaliser, jiwer) of the committed text against the reference and of offline tolk
   (`tolk transcribe`, its defaults);
5. the encoder's accuracy cost (bench_audio_ctx: every clip <= 30 s as one window, the full 30 s
   encoder against the encoder over the clip plus a padding: WER and time);
6. capacity: `tolk stream --streams N --realtime` for growing N, per model: the largest N whose p90
   commit latency over all streams' words stays <= 3 s.

Writes summary.md and results.json (+ every raw output) into --out. Measures, never asserts. The
machine's load (os.getloadavg before and after each run) is recorded: timings on a shared machine
are pessimistic.
"""
import argparse
import difflib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[stream {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ---- text ----------------------------------------------------------------------------------

_NORM = None


def normalize(text):
    """Whisper's English normaliser (whisper-normalizer package, else openai-whisper's)."""
    global _NORM
    if _NORM is None:
        try:
            from whisper_normalizer.english import EnglishTextNormalizer
        except ImportError:
            from whisper.normalizers import EnglishTextNormalizer
        _NORM = EnglishTextNormalizer()
    return _NORM(text)


def wer(ref, hyp):
    import jiwer
    r, h = normalize(ref), normalize(hyp)
    return 100.0 * jiwer.wer(r, h) if r.strip() else float("nan")


def words(text):
    """Light per-word normalisation for matching words (lower case, letters, digits, apostrophes)."""
    out = []
    for w in text.split():
        w = re.sub(r"[^a-z0-9']", "", w.lower())
        if w:
            out.append(w)
    return out


def match(a, b):
    """Pairs (i, j) of a[i] matched to b[j]: difflib's equal blocks, and replace blocks of equal
    length position by position (a substituted word still stands for that reference word)."""
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    pairs = []
    for op, i0, i1, j0, j1 in sm.get_opcodes():
        if op == "equal" or (op == "replace" and i1 - i0 == j1 - j0):
            pairs.extend(zip(range(i0, i1), range(j0, j1)))
    return pairs


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    k = (len(v) - 1) * q
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)


# ---- input ---------------------------------------------------------------------------------

def build_input(a, out):
    import numpy as np
    import soundfile as sf
    man = os.path.join(a.shared, "speech", "asr.tsv")
    rows = []
    with open(man, encoding="utf-8") as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(head, line.rstrip("\n").split("\t")))
            if r.get("language") == "en" and r["file"].startswith("en/"):
                rows.append(r)
    gap = np.zeros(int(0.3 * 16000), dtype=np.float32)
    pieces, clips, t = [], [], 0.0
    for r in rows:
        if t >= a.min_seconds:
            break
        x, sr = sf.read(os.path.join(a.shared, "speech", r["file"]), dtype="float32")
        if x.ndim > 1:
            x = x.mean(axis=1)
        if sr != 16000:
            import librosa
            x = librosa.resample(x, orig_sr=sr, target_sr=16000).astype(np.float32)
        if pieces:
            pieces.append(gap)
            t += len(gap) / 16000
        clips.append({"file": r["file"], "start": t, "end": t + len(x) / 16000,
                      "reference": r["reference"]})
        pieces.append(x)
        t += len(x) / 16000
    audio = np.concatenate(pieces)
    sf.write(os.path.join(out, "input.wav"), audio, 16000, subtype="PCM_16")
    ref = " ".join(c["reference"] for c in clips)
    with open(os.path.join(out, "reference.txt"), "w", encoding="utf-8") as f:
        f.write(ref + "\n")
    with open(os.path.join(out, "clips.json"), "w") as f:
        json.dump(clips, f, indent=1)
    log(f"input: {len(clips)} clips, {len(audio) / 16000:.1f} s")
    return clips, ref, len(audio) / 16000


def align_reference(a, out, ref):
    """Reference words with end times [(word, start, end)] from faster-whisper word timestamps."""
    path = os.path.join(out, "alignment.json")
    if not os.path.exists(path):
        from faster_whisper import WhisperModel
        m = WhisperModel(model_path(a, a.align_model), device="cpu", compute_type="int8",
                         cpu_threads=a.threads)
        segs, _ = m.transcribe(os.path.join(out, "input.wav"), language="en", beam_size=5,
                               word_timestamps=True, condition_on_previous_text=False)
        fw = [{"word": w.word, "start": w.start, "end": w.end} for s in segs for w in s.words]
        with open(path, "w") as f:
            json.dump(fw, f)
    with open(path) as f:
        fw = json.load(f)
    rw = words(ref)
    fwn = []
    fwt = []
    for w in fw:
        for x in words(w["word"]):
            fwn.append(x)
            fwt.append((w["start"], w["end"]))
    times = [None] * len(rw)
    for i, j in match(rw, fwn):
        times[i] = fwt[j]
    matched = sum(t is not None for t in times)
    # interpolate the unmatched ones between their neighbours
    known = [i for i, t in enumerate(times) if t is not None]
    for i in range(len(rw)):
        if times[i] is None:
            prev = max((k for k in known if k < i), default=None)
            nxt = min((k for k in known if k > i), default=None)
            if prev is None and nxt is None:
                times[i] = (0.0, 0.0)
            elif prev is None:
                times[i] = times[nxt]
            elif nxt is None:
                times[i] = times[prev]
            else:
                f = (i - prev) / (nxt - prev)
                e = times[prev][1] + f * (times[nxt][1] - times[prev][1])
                times[i] = (e, e)
    log(f"alignment: {matched}/{len(rw)} reference words matched by faster-whisper words")
    return [(w, t[0], t[1]) for w, t in zip(rw, times)], matched, " ".join(w["word"] for w in fw)


def model_path(a, name):
    return name if os.path.isdir(name) else os.path.join(a.models, name)


# ---- runs ----------------------------------------------------------------------------------

def run(cmd, out_path, err_path, env=None):
    t0 = time.time()
    la0 = loadavg()
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        rc = subprocess.call(cmd, stdout=fo, stderr=fe, env=env)
    return {"rc": rc, "wall_s": round(time.time() - t0, 1), "load_before": la0,
            "load_after": loadavg(), "cmd": " ".join(cmd)}


def run_tolk(a, out, label, model, policy, streams=1, extra=()):
    cmd = [a.tolk, "stream", os.path.join(out, "input.wav"), "--realtime", "--wall",
           "--output", "json", "--model", model_path(a, model), "--threads", str(a.threads),
           "--language", "en", "--policy", policy, "--stats"]
    if streams > 1:
        cmd += ["--streams", str(streams)]
    cmd += list(extra)
    log(f"{label}: {' '.join(cmd)}")
    info = run(cmd, os.path.join(out, label + ".jsonl"), os.path.join(out, label + ".log"))
    events = []
    with open(os.path.join(out, label + ".jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                events.append(json.loads(line))
    return events, info


def run_ws(a, out, model):
    label = "whisper_streaming"
    ws = os.path.join(a.whisper_streaming, "whisper_online.py")
    cmd = [sys.executable, os.path.join(ROOT, "bench", "stream_ws.py"), ws,
           os.path.join(out, "input.wav"), model_path(a, model), str(a.threads)]
    log(f"{label}: {' '.join(cmd)}")
    info = run(cmd, os.path.join(out, label + ".txt"), os.path.join(out, label + ".log"))
    commits = []
    with open(os.path.join(out, label + ".txt")) as f:
        for line in f:
            p = line.rstrip("\n").split(" ", 3)
            if len(p) == 4:
                try:
                    commits.append({"wall": float(p[0]) / 1000.0, "start": float(p[1]) / 1000.0,
                                    "end": float(p[2]) / 1000.0, "text": p[3]})
                except ValueError:
                    pass
    return commits, info


# ---- scoring -------------------------------------------------------------------------------

ONSETS = None  # each clip's speech onset in the audio (Silero VAD), or None (vad_onsets)


def vad_onsets(a, out, clips):
    """Each clip's first speech start (s) by `tolk vad` on input.wav, or None without a VAD model."""
    path = os.path.join(out, "vad.json")
    info = run([a.tolk, "vad", os.path.join(out, "input.wav"), "--model_dir", a.models, "--threads",
                str(a.threads), "--vad_min_silence_duration_ms", "100", "--vad_speech_pad_ms", "0",
                "-f", "json"], path, os.path.join(out, "vad.log"))
    if info["rc"] != 0:
        log("no speech onsets: tolk vad failed (scripts/get-model silero-vad)")
        return None
    with open(path) as f:
        segs = json.load(f)[0]["speech"]
    onsets = []
    for c in clips:
        st = [s["start"] for s in segs if c["start"] - 0.05 <= s["start"] < c["end"]]
        onsets.append(min(st) if st else None)
    return onsets


def score(commits, partials, refw, clips, ref):
    """commits: [(wall, text)] in order; partials: [(wall, start, end, text)] (text events incl.
    finals)."""
    cw, ct = [], []
    for wall, text in commits:
        for w in words(text):
            cw.append(w)
            ct.append(wall)
    rw = [w for w, _, _ in refw]
    lat = []
    for i, j in match(rw, cw):
        lat.append(ct[j] - refw[i][2])
    # first text after each clip's onset (the first reference word's start in that clip)
    first = []
    k = 0
    for c in clips:
        n = len(words(c["reference"]))
        if n == 0:
            continue
        onset = refw[k][1]
        k += n
        nxt = [w for w, _, e, t in partials if w >= onset and e >= onset and t.strip()]
        if nxt:
            first.append(min(nxt) - onset)
    # first text after each clip's speech onset in the audio, about audio after it
    first_vad = []
    for o in ONSETS or []:
        nxt = [w for w, b, _, t in partials if o is not None and w >= o and b >= o - 0.35 and t.strip()]
        if nxt:
            first_vad.append(min(nxt) - o)
    text = " ".join(t for _, t in commits)
    return {
        "words_matched": len(lat), "reference_words": len(rw),
        "commit_median_s": round(statistics.median(lat), 3) if lat else None,
        "commit_p90_s": round(pct(lat, 0.9), 3) if lat else None,
        "commit_mean_s": round(statistics.fmean(lat), 3) if lat else None,
        "first_text_s": round(first[0], 3) if first else None,
        "first_text_median_s": round(statistics.median(first), 3) if first else None,
        "first_text_vad_s": round(first_vad[0], 3) if first_vad else None,
        "first_text_vad_median_s": round(statistics.median(first_vad), 3) if first_vad else None,
        "wer": round(wer(ref, text), 2),
        "text": text,
    }


def tolk_score(events, refw, clips, ref):
    commits = [(e["wall"], e["text"]) for e in events if e["type"] == "final"]
    texts = [(e["wall"], e["start"], e["end"], e["text"]) for e in events
             if e["type"] in ("partial", "final")]
    s = score(commits, texts, refw, clips, ref)
    ends = [e for e in events if e["type"] == "end"]
    s["ended_ok"] = len(ends) == 1 and "error" not in ends[0]
    return s


# ---- main ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="result folder [bench/results/DATE-stream]")
    ap.add_argument("--tolk", default=os.path.join(ROOT, "build", "tolk"))
    ap.add_argument("--bench-audio-ctx", default=os.path.join(ROOT, "build", "bench_audio_ctx"))
    ap.add_argument("--shared", default=os.environ.get("TOLK_DATA", os.path.join(ROOT, "data")),
                    help="the data folder (data/ of the repository; $TOLK_DATA)")
    ap.add_argument("--models", default=os.environ.get(
        "TOLK_MODELS", os.path.expanduser("~/.cache/tolk/models")))
    ap.add_argument("--model", default="base")
    ap.add_argument("--align-model", default="base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=120.0)
    ap.add_argument("--whisper-streaming", default=os.environ.get("WHISPER_STREAMING"),
                    help="a checkout of ufal/whisper_streaming (whisper_online.py)")
    ap.add_argument("--capacity", default="tiny.en:1,2,3,4,6,8;base:1,2,3,4",
                    help="MODEL:N,N,...;... stream counts to try (stops at the first p90 > 3 s); "
                         "'' skips")
    ap.add_argument("--audio-ctx", default="tiny.en,base", help="models for the encoder check; '' skips")
    ap.add_argument("--audio-ctx-settings", default="1:10,1:0,0:0,2:0",
                    help="PAD:MIN encoder settings (seconds past the audio : least seconds) "
                         "compared with the full 30 s encoder")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: tolk,la2,ws,offline")
    a = ap.parse_args()
    skip = set(x for x in a.skip.split(",") if x)
    out = a.out or os.path.join(ROOT, "bench", "results", time.strftime("%Y-%m-%d") + "-stream")
    os.makedirs(out, exist_ok=True)
    res = {"machine": {"host": platform.node(), "cpus": os.cpu_count(),
                       "cpu": cpu_name(), "load_at_start": loadavg(), "threads": a.threads},
           "model": a.model, "runs": {}}
    clips, ref, dur = build_input(a, out)
    res["input"] = {"clips": len(clips), "seconds": round(dur, 1)}
    refw, matched, fw_text = align_reference(a, out, ref)
    global ONSETS
    ONSETS = vad_onsets(a, out, clips)
    res["alignment"] = {"tool": f"faster-whisper {a.align_model} int8 word_timestamps",
                        "matched": matched, "words": len(refw),
                        "faster_whisper_wer": round(wer(ref, fw_text), 2)}

    if "offline" not in skip:
        log("offline tolk transcribe")
        info = run([a.tolk, "transcribe", os.path.join(out, "input.wav"), "--model",
                    model_path(a, a.model), "--language", "en", "--threads", str(a.threads),
                    "--verbose", "False", "-f", "txt", "-o", out],
                   os.path.join(out, "offline.out"), os.path.join(out, "offline.log"))
        with open(os.path.join(out, "input.txt"), encoding="utf-8") as f:
            off = f.read()
        res["offline"] = {"wer": round(wer(ref, off), 2), "wall_s": info["wall_s"],
                          "settings": "tolk transcribe defaults (beam 5, fallback)"}
        log(f"offline WER {res['offline']['wer']}")
    for label, policy, part in (("tolk-fast", "fast", "tolk"), ("tolk-la2", "agreement", "la2")):
        if part in skip:
            continue
        ev, info = run_tolk(a, out, label, a.model, policy)
        s = tolk_score(ev, refw, clips, ref)
        s.update(info)
        res["runs"][label] = s
        log(f"{label}: median {s['commit_median_s']} p90 {s['commit_p90_s']} first "
            f"{s['first_text_s']} WER {s['wer']}")
    if "ws" not in skip and a.whisper_streaming:
        commits, info = run_ws(a, out, a.model)
        s = score([(c["wall"], c["text"]) for c in commits],
                  [(c["wall"], c["start"], c["end"], c["text"]) for c in commits], refw, clips, ref)
        s.update(info)
        res["runs"]["whisper_streaming"] = s
        log(f"whisper_streaming: median {s['commit_median_s']} p90 {s['commit_p90_s']} first "
            f"{s['first_text_s']} WER {s['wer']}")

    if a.audio_ctx:
        res["audio_ctx"] = {}
        for m in a.audio_ctx.split(","):
            res["audio_ctx"][m] = audio_ctx_check(a, out, m)

    if a.capacity:
        res["capacity"] = {}
        for part in a.capacity.split(";"):
            m, ns = part.split(":")
            rows = []
            for n in [int(x) for x in ns.split(",")]:
                ev, info = run_tolk(a, out, f"capacity-{m}-{n}", m, "fast", streams=n)
                lat, ok = [], True
                for i in range(n):
                    evi = [e for e in ev if e.get("stream", 0) == i]
                    s = tolk_score(evi, refw, clips, ref)
                    ok = ok and s["ended_ok"]
                    commits = [(e["wall"], e["text"]) for e in evi if e["type"] == "final"]
                    cw, ct = [], []
                    for wall, text in commits:
                        for w in words(text):
                            cw.append(w)
                            ct.append(wall)
                    lat += [ct[j] - refw[k][2] for k, j in match([w for w, _, _ in refw], cw)]
                row = {"streams": n, "commit_median_s": round(statistics.median(lat), 3) if lat else None,
                       "commit_p90_s": round(pct(lat, 0.9), 3) if lat else None, "ended_ok": ok,
                       "load_before": info["load_before"], "load_after": info["load_after"]}
                rows.append(row)
                log(f"capacity {m} x{n}: {row}")
                if not ok or row["commit_p90_s"] is None or row["commit_p90_s"] > 3.0:
                    break
            good = [r["streams"] for r in rows if r["ended_ok"] and r["commit_p90_s"] is not None
                    and r["commit_p90_s"] <= 3.0]
            res["capacity"][m] = {"rows": rows, "sustained": max(good) if good else 0}
    res["machine"]["load_at_end"] = loadavg()
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_summary(out, res)
    log(f"wrote {out}/summary.md")


def audio_ctx_check(a, out, m):
    label = f"audio-ctx-{m}"
    log(f"{label}: {a.bench_audio_ctx}")
    env = dict(os.environ, TOLK_THREADS=str(a.threads))
    info = run([a.bench_audio_ctx, model_path(a, m), os.path.join(a.shared, "speech", "asr.tsv")]
               + a.audio_ctx_settings.split(","), os.path.join(out, label + ".tsv"),
               os.path.join(out, label + ".log"), env=env)
    refs = {}
    with open(os.path.join(a.shared, "speech", "asr.tsv"), encoding="utf-8") as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(head, line.rstrip("\n").split("\t")))
            refs[r["file"]] = r["reference"]
    by = {}
    with open(os.path.join(out, label + ".tsv"), encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 5:
                continue
            d = by.setdefault(p[1], {"refs": [], "hyps": [], "secs": 0.0, "pos": 0})
            d["refs"].append(refs.get(p[0], ""))
            d["hyps"].append(p[4])
            d["secs"] += float(p[3])
            d["pos"] += int(p[2])
    rows = {}
    import jiwer
    for k, d in by.items():
        r = [normalize(x) for x in d["refs"]]
        h = [normalize(x) for x in d["hyps"]]
        keep = [(x, y) for x, y in zip(r, h) if x.strip()]
        rows[k] = {"wer": round(100.0 * jiwer.wer([x for x, _ in keep], [y for _, y in keep]), 2),
                   "clips": len(keep), "seconds": round(d["secs"], 2),
                   "mean_positions": round(d["pos"] / max(1, len(d["refs"])), 1)}
    return {"rows": rows, "load_before": info["load_before"], "load_after": info["load_after"]}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fmt(v, nd=2):
    return "—" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def write_summary(out, res):
    m = res["machine"]
    L = [f"# Live streaming: tolk stream vs whisper_streaming ({time.strftime('%Y-%m-%d')})", "",
         f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['threads']} threads per engine; load average "
         f"(1/5/15 min) at start {m['load_at_start']}, at end {m.get('load_at_end')}. "
         "On a shared machine every latency here is pessimistic.", "",
         f"Input: {res['input']['clips']} English clips (asr.tsv: librispeech, ljspeech, "
         f"pocketsphinx) concatenated with 0.3 s gaps, {res['input']['seconds']} s, fed at real "
         f"time; model {res['model']}. Word end times: {res['alignment']['tool']} "
         f"({res['alignment']['matched']}/{res['alignment']['words']} reference words matched; "
         f"its own WER {res['alignment']['faster_whisper_wer']} %).", "",
         "| run | commit latency median (s) | p90 (s) | mean (s) | first text after onset: first clip / "
         "median of clips (s) | same after the speech onset (VAD) (s) | committed WER % | "
         "words matched | load before → after |",
         "|---|---|---|---|---|---|---|---|---|"]
    for k, s in res["runs"].items():
        L.append(f"| {k} | {fmt(s['commit_median_s'])} | {fmt(s['commit_p90_s'])} | "
                 f"{fmt(s['commit_mean_s'])} | {fmt(s['first_text_s'])} / "
                 f"{fmt(s['first_text_median_s'])} | {fmt(s.get('first_text_vad_s'))} / "
                 f"{fmt(s.get('first_text_vad_median_s'))} | {fmt(s['wer'])} | {s['words_matched']}/"
                 f"{s['reference_words']} | {s['load_before']} → {s['load_after']} |")
    if "offline" in res:
        L += ["", f"Offline tolk ({res['offline']['settings']}): WER {res['offline']['wer']} %."]
    if res.get("audio_ctx"):
        L += ["", "## Encoder over the audio present (reduced audio context)", "",
              "Each English clip <= 30 s of asr.tsv as one window, greedy: the full 30 s encoder "
              "against the encoder over the clip plus PAD seconds, at least MIN seconds "
              "(streams: PAD 1, MIN 10).", "",
              "| model | setting | WER % | mean encoder positions | request seconds (sum) |",
              "|---|---|---|---|---|"]
        for mname, d in res["audio_ctx"].items():
            for k, r in sorted(d["rows"].items(), key=lambda kv: (kv[0] != "full", kv[0])):
                L.append(f"| {mname} | {'full 30 s' if k == 'full' else 'PAD:MIN ' + k} | "
                         f"{r['wer']} | {r['mean_positions']} | {r['seconds']} |")
    if res.get("capacity"):
        L += ["", "## Capacity: concurrent real-time streams on one engine (fast policy)", "",
              "| model | streams | commit median (s) | p90 (s) | all ended | load before → after |",
              "|---|---|---|---|---|---|"]
        for mname, d in res["capacity"].items():
            for r in d["rows"]:
                L.append(f"| {mname} | {r['streams']} | {fmt(r['commit_median_s'])} | "
                         f"{fmt(r['commit_p90_s'])} | {r['ended_ok']} | {r['load_before']} → "
                         f"{r['load_after']} |")
            L.append(f"| {mname} | **sustained with p90 <= 3 s: {d['sustained']}** | | | | |")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
