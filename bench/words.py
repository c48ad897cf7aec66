#!/usr/bin/env python3
"""words.py — word-level timestamps: tolk against openai-whisper and
faster-whisper (accuracy), and what they cost (speed).

  bench/words.py accuracy --ref DIR [--tolk build/tolk] [--models tiny.en,base] --out OUT
  bench/words.py cost [--model base] [--threads 2] [--manifest M] [--limit N] --out OUT

accuracy: DIR holds tests/fixtures/make_words.py's output for every shared
clip (openai-whisper and faster-whisper with word_timestamps=True, greedy,
temperature 0, no fallback, the same weights). tolk transcribes the same
clips the same way (--word_timestamps True --beam_size None
--temperature_increment_on_fallback None --max_line_width 42
--highlight_words True, every format) and, per model, the report
gives: clips with the reference's text; on those, clips with the same words
in the same order; the distribution of |start - start_ref| and
|end - end_ref| over the words (0, 0.01, 0.02, <= 0.1, > 0.1 s), the share
within 0.02 s; the same against faster-whisper; and whether tolk's srt /
vtt files are byte-identical to openai-whisper's writers' with the same
options on its own result.

cost: the same files transcribed with and without word timestamps by tolk
(`tolk bench`, one process per setting), faster-whisper and openai-whisper
(one child process per engine and setting), each with its model loaded
once and one untimed warm-up file, N threads, greedy at temperature 0
without fallback. Reports per engine the summed wall seconds of the files
with and without words, the overhead and RTFx, and the load average.

Both write OUT/report.md and OUT/*.json. Needs a virtualenv with
openai-whisper, faster-whisper, soundfile and soxr (the audio is read with
libsndfile and resampled with libsoxr, as tolk does, and handed to the
Python engines as samples; decoding is not timed for them, and tolk's
audio stage is subtracted from its wall time).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

BINS = [(0.0, "0"), (0.01, "0.01"), (0.02, "0.02"), (0.1, "<= 0.1"), (float("inf"), "> 0.1")]


def log(*a):
    print("words:", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- accuracy

def tolk_words(tolk, model, files, shared, out, threads):
    """Run tolk on files (manifest rows) into out/; returns {file: result dict}."""
    os.makedirs(out, exist_ok=True)
    by_lang = {}
    for f in files:
        by_lang.setdefault(f["language"], []).append(f)
    for lang, rows in by_lang.items():
        argv = [tolk, "transcribe", "--model", model, "--word_timestamps", "True",
                "--beam_size", "None", "--temperature_increment_on_fallback", "None",
                "--threads", str(threads), "--verbose", "False", "-f", "all", "-o", out,
                "--max_line_width", "42", "--highlight_words", "True",
                "--language", lang] + [os.path.join(shared, r["file"]) for r in rows]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    res = {}
    for f in files:
        base = os.path.splitext(os.path.basename(f["file"]))[0]
        res[f["file"]] = json.load(open(os.path.join(out, base + ".json"), encoding="utf-8"))
        for fmt in ("srt", "vtt"):
            res[f["file"]][fmt] = open(os.path.join(out, f"{base}.{fmt}"), encoding="utf-8").read()
    return res


def flat_words(segments):
    return [w for s in segments for w in s["words"]]


def histogram(diffs):
    counts = [0] * len(BINS)
    for d in diffs:
        for i, (lim, _) in enumerate(BINS):
            if d <= lim + 1e-9:
                counts[i] += 1
                break
    return counts


def compare(tolk_res, ref, label):
    """Per-file comparison of tolk's words with one engine's."""
    st = {"files": 0, "same_text": 0, "same_words": 0, "words": 0, "start": [], "end": [],
          "differing_files": []}
    for f, r in ref.items():
        t = tolk_res[f]
        st["files"] += 1
        if t["text"] != r["text"]:
            continue
        st["same_text"] += 1
        tw, rw = flat_words(t["segments"]), flat_words(r["segments"])
        if [w["word"] for w in tw] != [w["word"] for w in rw]:
            st["differing_files"].append(f)
            continue
        st["same_words"] += 1
        for a, b in zip(tw, rw):
            st["words"] += 1
            st["start"].append(round(abs(a["start"] - b["start"]), 6))
            st["end"].append(round(abs(a["end"] - b["end"]), 6))
    return st


def accuracy(a):
    out = {}
    lines = ["# Word timestamps: tolk vs openai-whisper and faster-whisper", ""]
    for model in a.models.split(","):
        ref = json.load(open(os.path.join(a.ref, f"{model}.json"), encoding="utf-8"))
        files = [{"file": f["file"], "language": f["language"]} for f in ref["files"]]
        tdir = os.path.join(a.out, "tolk", model)
        log(f"{model}: tolk on {len(files)} clips")
        t0 = time.perf_counter()
        tres = tolk_words(a.tolk, model, files, a.shared, tdir, a.threads)
        log(f"{model}: {time.perf_counter() - t0:.0f} s")
        res = {"model": model, "engine_versions": ref.get("engine_versions")}
        for eng in ("openai", "faster_whisper"):
            refs = {f["file"]: f[eng] for f in ref["files"]}
            st = compare(tres, refs, eng)
            both = st["start"] + st["end"]
            within = sum(d <= 0.02 + 1e-9 for d in both)
            res[eng] = {k: v for k, v in st.items() if k not in ("start", "end")}
            res[eng]["hist_start"] = histogram(st["start"])
            res[eng]["hist_end"] = histogram(st["end"])
            res[eng]["within_0.02"] = within
            res[eng]["boundaries"] = len(both)
            res[eng]["exact"] = sum(d <= 1e-9 for d in both)
        subs_same = subs = 0
        for f in ref["files"]:
            t = tres[f["file"]]
            if t["text"] != f["openai"]["text"]:
                continue
            for fmt in ("srt", "vtt"):
                subs += 1
                subs_same += t[fmt] == f[f"openai_{fmt}"]
        res["subtitles"] = {"same": subs_same, "compared": subs}
        out[model] = res
        o = res["openai"]
        lines += [f"## {model}: {len(files)} clips", "",
                  f"- same text as openai-whisper: {o['same_text']} / {o['files']} clips; "
                  f"of those, same words in the same order: {o['same_words']}",
                  f"- word boundaries (start and end) compared: {o['boundaries']}; identical: "
                  f"{o['exact']} ({100.0 * o['exact'] / max(1, o['boundaries']):.2f} %); "
                  f"within 0.02 s: {o['within_0.02']} "
                  f"({100.0 * o['within_0.02'] / max(1, o['boundaries']):.2f} %)",
                  f"- subtitles (--max_line_width 42 --highlight_words True) identical to "
                  f"openai-whisper's: {subs_same} / {subs} (srt and vtt of the clips with the "
                  f"same text)", ""]
        lines += ["Δ: the absolute difference of a word's start or end, seconds (tolk's times "
                  "and the references' are rounded to 0.01 s).", "",
                  "| engine | clips same text | same words | words | Δ = 0 | Δ = 0.01 | Δ = 0.02 | "
                  "Δ ≤ 0.1 | Δ > 0.1 | within 0.02 s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for eng, name in (("openai", "openai-whisper"), ("faster_whisper", "faster-whisper")):
            e = res[eng]
            h = [x + y for x, y in zip(e["hist_start"], e["hist_end"])]
            n = max(1, e["boundaries"])
            lines.append(f"| {name} | {e['same_text']}/{e['files']} | {e['same_words']} | "
                         f"{e['words']} | " + " | ".join(f"{c} ({100.0 * c / n:.1f} %)" for c in h)
                         + f" | {100.0 * e['within_0.02'] / n:.2f} % |")
        lines.append("")
        if o["differing_files"]:
            lines.append("Same text, different words (openai-whisper): " +
                         ", ".join(o["differing_files"]))
            lines.append("")
    os.makedirs(a.out, exist_ok=True)
    json.dump(out, open(os.path.join(a.out, "accuracy.json"), "w"), indent=1)
    open(os.path.join(a.out, "report.md"), "a").write("\n".join(lines) + "\n")
    print("\n".join(lines))


# --------------------------------------------------------------------------- cost

def read_rows(manifest, limit, english_only):
    base = os.path.dirname(os.path.abspath(manifest))
    rows = []
    for r in csv.DictReader(open(manifest, encoding="utf-8"), delimiter="\t"):
        if english_only and r["language"] != "en":
            continue
        rows.append({"file": r["file"], "path": os.path.join(base, r["file"]),
                     "language": r["language"]})
    return rows[:limit] if limit else rows


def child(a):
    """One Python engine, one setting: time every file (samples in memory)."""
    import numpy as np
    import soundfile
    import soxr
    rows = json.load(open(a.files))
    audios = []
    for r in rows:
        x, sr = soundfile.read(r["path"], dtype="float32", always_2d=True)
        x = x.mean(axis=1).astype(np.float32)
        if sr != 16000:
            x = soxr.resample(x, sr, 16000, quality="VHQ").astype(np.float32)
        audios.append(x)
    words = a.words == "1"
    if a.engine == "openai":
        import torch
        from make_words import openai_model
        torch.set_num_threads(a.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        model = openai_model(a.model, a.cache)

        def run(x, lang):
            model.transcribe(x, language=lang, temperature=0.0, word_timestamps=words,
                             fp16=False, condition_on_previous_text=True, verbose=None)
    else:
        from faster_whisper import WhisperModel
        from make_words import model_dir
        model = WhisperModel(model_dir(a.model), device="cpu", compute_type="float32",
                             cpu_threads=a.threads)

        def run(x, lang):
            segs, _ = model.transcribe(x, language=lang, beam_size=1, best_of=1,
                                       temperature=0.0, word_timestamps=words,
                                       condition_on_previous_text=True, vad_filter=False)
            list(segs)
    run(audios[0], rows[0]["language"])  # warm-up
    times = []
    for r, x in zip(rows, audios):
        reps = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            run(x, r["language"])
            reps.append(time.perf_counter() - t0)
        times.append(sorted(reps)[len(reps) // 2])
    json.dump({"times": times, "audio_s": [len(x) / 16000.0 for x in audios]},
              open(a.result, "w"))


def cost(a):
    multi = not a.model.endswith(".en")
    rows = read_rows(a.manifest, a.limit, not multi)
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    files = os.path.join(tmp, "files.json")
    json.dump(rows, open(files, "w"))
    manifest = os.path.join(tmp, "m.tsv")
    with open(manifest, "w") as f:
        f.write("file\tlanguage\n")
        for r in rows:
            f.write(f"{r['path']}\t{r['language']}\n")
    res = {"model": a.model, "threads": a.threads, "files": len(rows),
           "load_before": os.getloadavg()[0]}
    for words in (0, 1):
        for eng in ("tolk", "faster-whisper", "openai-whisper"):
            log(f"{eng}, word timestamps {'on' if words else 'off'}")
            out = os.path.join(tmp, f"{eng}-{words}.json")
            if eng == "tolk":
                argv = [a.tolk, "bench", manifest, "--model", a.model, "--threads",
                        str(a.threads), "--device", "cpu", "--beam_size", "None",
                        "--temperature_increment_on_fallback", "None",
                        "--word_timestamps", "True" if words else "False", "--quiet",
                        "--repeat", str(a.repeat), "-o", out]
                subprocess.run(argv, check=True)
                per = {}
                for line in open(out):
                    j = json.loads(line)
                    if j.get("type") == "file":
                        per.setdefault(j["index"], []).append(
                            (j["wall_s"] - j["stages"]["audio_s"], j["audio_s"]))
                times = [sorted(t for t, _ in v)[len(v) // 2] for _, v in sorted(per.items())]
                audio = [v[0][1] for _, v in sorted(per.items())]
            else:
                argv = [sys.executable, os.path.abspath(__file__), "_child",
                        "--engine", "openai" if eng.startswith("openai") else "fw",
                        "--model", a.model, "--threads", str(a.threads), "--files", files,
                        "--result", out, "--words", str(words), "--cache", a.cache,
                        "--repeat", str(a.repeat)]
                subprocess.run(argv, check=True)
                j = json.load(open(out))
                times, audio = j["times"], j["audio_s"]
            res.setdefault(eng, {})["words" if words else "plain"] = {
                "seconds": sum(times), "audio_s": sum(audio), "per_file": times}
    res["load_after"] = os.getloadavg()[0]
    json.dump(res, open(os.path.join(a.out, "cost.json"), "w"), indent=1)
    lines = [f"## Cost: {a.model}, {len(rows)} files "
             f"({res['tolk']['plain']['audio_s']:.0f} s of audio), {a.threads} threads, greedy, "
             f"temperature 0, "
             f"median of {a.repeat} run(s) per file", "",
             "| engine | without words (s) | RTFx | with words (s) | RTFx | word overhead |",
             "|---|---|---|---|---|---|"]
    for eng in ("tolk", "faster-whisper", "openai-whisper"):
        p, w = res[eng]["plain"], res[eng]["words"]
        lines.append(f"| {eng} | {p['seconds']:.1f} | {p['audio_s'] / p['seconds']:.1f} | "
                     f"{w['seconds']:.1f} | {w['audio_s'] / w['seconds']:.1f} | "
                     f"+{100.0 * (w['seconds'] / p['seconds'] - 1):.1f} % |")
    lines += ["", f"Load average (1 min) before / after: {res['load_before']:.1f} / "
              f"{res['load_after']:.1f}. Wall seconds exclude audio decoding (tolk: its audio "
              "stage subtracted; Python engines: samples given in memory) and model loading; "
              "one untimed warm-up file per run.", ""]
    open(os.path.join(a.out, "report.md"), "a").write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        ap = argparse.ArgumentParser()
        for k in ("--engine", "--model", "--files", "--result", "--words", "--cache"):
            ap.add_argument(k)
        ap.add_argument("--threads", type=int)
        ap.add_argument("--repeat", type=int, default=1)
        child(ap.parse_args(sys.argv[2:]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("accuracy", "cost"):
        p = sub.add_parser(name)
        p.add_argument("--tolk", default=os.path.join(ROOT, "build", "tolk"))
        p.add_argument("--out", required=True)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--shared", default=os.path.join(ROOT, "data", "speech"))
        p.add_argument("--cache", default=os.path.expanduser("~/.cache/tolk/peers"))
    sub.choices["accuracy"].add_argument("--ref", required=True)
    sub.choices["accuracy"].add_argument("--models", default="tiny.en,base")
    sub.choices["cost"].add_argument("--model", default="base")
    sub.choices["cost"].add_argument("--manifest", default=os.path.join(
        ROOT, "data", "speech", "asr.tsv"))
    sub.choices["cost"].add_argument("--limit", type=int, default=0)
    sub.choices["cost"].add_argument("--repeat", type=int, default=1,
                                     help="runs per file; the median is kept")
    a = ap.parse_args()
    (accuracy if a.cmd == "accuracy" else cost)(a)


if __name__ == "__main__":
    main()
