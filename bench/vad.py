#!/usr/bin/env python3
"""bench/vad.py — the Python half of bench/vad.sh (run it through that script).

Subcommands (each writes one JSON file):
  tolk-words  OUT TOLK MODEL THREADS MANIFEST   tolk transcribe (greedy, defaults) on the clips of
                                                 MANIFEST with --vad_filter False and True; words
                                                 per clip (whitespace-separated, of the text)
  fw-words    OUT MODEL THREADS MANIFEST        the same with faster-whisper (beam_size=1, other
                                                 options its defaults; vad_filter False and True)
  wer         OUT TOLK MODEL THREADS ASR_TSV [SHARDS [LIMIT]]  tolk transcribe (greedy, the manifest's language) on
                                                 every clip of asr.tsv, filter off and on: WER with
                                                 bench/suite.py's scoring (Whisper's normalisers +
                                                 jiwer, corpus level)
  wer-done    OUT ASR_TSV                       WER over the clips that both runs finished
  summary     OUTDIR                            summary.md from the files above
  onnx-speed  OUT FILES...                      silero-vad's ONNX model in onnxruntime (one thread):
                                                 per chunk through its OnnxWrapper as
                                                 get_speech_timestamps runs it, and faster-whisper's
                                                 SileroVADModel (its own ONNX export, all chunks'
                                                 encoder in one batch); audio seconds per CPU second
Needs: faster-whisper, silero-vad, onnxruntime, soundfile, jiwer, whisper-normalizer.
"""
import csv
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def read_manifest(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    base = os.path.dirname(os.path.abspath(path))
    for r in rows:
        r["path"] = os.path.join(base, r["file"])
    return rows


def words(text):
    return len((text or "").split())


def run_tolk(tolk, model, threads, files, outdir, extra, shards=1, base=None):
    """tolk transcribe FILES (linked under unique names, index-prefixed) -> {file: (text,
    segments)}; base: the folder the names are made relative to (default: the files' common
    folder). Files whose output is already in outdir are not run again (an interrupted run
    resumes); the rest go to `shards` tolk processes at once."""
    os.makedirs(outdir, exist_ok=True)
    base = base or os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    # unique names: the path under the manifest's folder, "/" -> "__"
    names = [os.path.relpath(os.path.abspath(f), base).replace(os.sep, "__") for f in files]
    stems = [os.path.splitext(n)[0] for n in names]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        todo = []
        for i, f in enumerate(files):
            if os.path.exists(os.path.join(outdir, stems[i] + ".json")):
                continue
            link = os.path.join(tmp, names[i])
            os.symlink(os.path.abspath(f), link)
            todo.append(link)
        procs = []
        for k in range(shards):
            part = todo[k::shards]
            if part:
                cmd = [tolk, "transcribe", "--model", model, "--beam_size", "None", "--threads",
                       str(threads), "--verbose", "False", "-f", "json", "-o", outdir] + extra + part
                procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError("tolk transcribe failed (%d)" % p.returncode)
    wall = time.time() - t0
    out = {}
    for i, f in enumerate(files):
        with open(os.path.join(outdir, stems[i] + ".json"), encoding="utf-8") as fh:
            j = json.load(fh)
        out[f] = (j["text"], [(s["start"], s["end"], s["text"]) for s in j["segments"]])
    return out, wall


def tolk_words(out, tolk, model, threads, manifest):
    rows = read_manifest(manifest)
    files = [r["path"] for r in rows]
    res = {"engine": "tolk", "settings": "greedy (--beam_size None), other options default",
           "clips": {}}
    for flag in ("False", "True"):
        got, wall = run_tolk(tolk, model, threads, files,
                             os.path.join(os.path.dirname(out), "tolk-nonspeech-vad" + flag),
                             ["--vad_filter", flag], 1, os.path.dirname(os.path.abspath(manifest)))
        for r in rows:
            text, segs = got[r["path"]]
            res["clips"].setdefault(r["file"], {})["vad_" + flag.lower()] = {
                "words": words(text), "text": text.strip()[:300]}
        res["wall_s_vad_" + flag.lower()] = wall
    json.dump(res, open(out, "w"), indent=1)


def fw_words(out, model, threads, manifest):
    from faster_whisper import WhisperModel
    import faster_whisper
    rows = read_manifest(manifest)
    m = WhisperModel(model, device="cpu", compute_type="float32", cpu_threads=int(threads))
    res = {"engine": "faster-whisper %s" % faster_whisper.__version__,
           "settings": "beam_size=1, other options default", "clips": {}}
    for vad in (False, True):
        t0 = time.time()
        for r in rows:
            segs, info = m.transcribe(r["path"], beam_size=1, vad_filter=vad)
            text = "".join(s.text for s in segs)
            res["clips"].setdefault(r["file"], {})["vad_" + str(vad).lower()] = {
                "words": words(text), "text": text.strip()[:300]}
        res["wall_s_vad_" + str(vad).lower()] = time.time() - t0
    json.dump(res, open(out, "w"), indent=1)


def load_suite():
    loader = importlib.machinery.SourceFileLoader("tolk_bench_suite",
                                                  os.path.join(HERE, "suite.py"))
    spec = importlib.util.spec_from_loader("tolk_bench_suite", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def wer(out, tolk, model, threads, asr_tsv, shards="4", limit="0"):
    """Filter off and on, each language's clips in `shards` tolk processes at once (the
    transcripts do not depend on it; the wall times are not comparable then). limit > 0: only
    the clips of the first `limit` rows (a machine too busy for the whole set)."""
    suite = load_suite()
    rows = read_manifest(asr_tsv)
    if int(limit) > 0:
        rows = rows[:int(limit)]
    base = os.path.commonpath([os.path.dirname(r["path"]) for r in rows])  # names unique across runs
    res = {"settings": "tolk transcribe --beam_size None --language <manifest>", "runs": {}}
    for flag in ("False", "True"):
        hyps = {}
        wall = 0.0
        for lang in sorted({r["language"] for r in rows}):
            files = [r["path"] for r in rows if r["language"] == lang]
            got, w = run_tolk(tolk, model, threads, files,
                              os.path.join(os.path.dirname(out), "tolk-asr-vad%s-%s" % (flag, lang)),
                              ["--language", lang, "--vad_filter", flag], int(shards), base)
            wall += w
            hyps.update({f: t for f, (t, _) in got.items()})
        refs = [r["reference"] for r in rows]
        hyp = [hyps[r["path"]] for r in rows]
        langs = [r["language"] for r in rows]
        sc = suite.score_asr(refs, hyp, langs)
        sc["wall_s"] = wall
        sc["files"] = len(rows)
        sc["rows"] = "all" if int(limit) <= 0 else "the first %d of %s" % (int(limit), asr_tsv)
        res["runs"]["vad_" + flag.lower()] = sc
        res.setdefault("texts", {})["vad_" + flag.lower()] = {r["file"]: hyps[r["path"]]
                                                              for r in rows}
    a, b = res["runs"]["vad_false"]["wer"], res["runs"]["vad_true"]["wer"]
    res["wer_delta"] = b - a
    json.dump(res, open(out, "w"), indent=1)


def wer_done(out, asr_tsv):
    """WER off / on over the clips of asr_tsv whose outputs both exist in out's folder (a run that
    could not finish on a busy machine): the same scoring as wer."""
    suite = load_suite()
    rows = read_manifest(asr_tsv)
    base = os.path.commonpath([os.path.dirname(r["path"]) for r in rows])
    outdir = os.path.dirname(out)
    refs, hyps, langs, secs, used = [], {"False": [], "True": []}, [], 0.0, []
    for r in rows:
        stem = os.path.splitext(os.path.relpath(r["path"], base).replace(os.sep, "__"))[0]
        paths = {flag: os.path.join(outdir, "tolk-asr-vad%s-%s" % (flag, r["language"]),
                                    stem + ".json") for flag in ("False", "True")}
        if not all(os.path.exists(p) for p in paths.values()):
            continue
        for flag, p in paths.items():
            hyps[flag].append(json.load(open(p, encoding="utf-8"))["text"])
        refs.append(r["reference"])
        langs.append(r["language"])
        secs += float(r.get("duration_s") or 0)
        used.append(os.path.relpath(r["path"], base))
    res = {"settings": "tolk transcribe --beam_size None --language <manifest>", "runs": {},
           "clips": used}
    for flag in ("False", "True"):
        sc = suite.score_asr(refs, hyps[flag], langs)
        sc.update(files=len(refs), wall_s=float("nan"), audio_s=round(secs, 1),
                  rows="the %d clips of %s done with the filter off and on" % (len(refs), asr_tsv))
        res["runs"]["vad_" + flag.lower()] = sc
    res["wer_delta"] = res["runs"]["vad_true"]["wer"] - res["runs"]["vad_false"]["wer"]
    json.dump(res, open(out, "w"), indent=1)
    print("%d clips: WER off %.2f, on %.2f" % (len(refs), res["runs"]["vad_false"]["wer"],
                                                res["runs"]["vad_true"]["wer"]))


def onnx_speed(out, files):
    import numpy as np
    import onnxruntime
    import soundfile as sf
    import torch
    from silero_vad import load_silero_vad
    import faster_whisper.vad as fv
    torch.set_num_threads(1)
    audio = []
    for f in files:
        x, sr = sf.read(f, dtype="float32", always_2d=True)
        if sr != 16000:  # only 16 kHz clips are timed
            continue
        audio.append(x.mean(axis=1).astype(np.float32))
    secs = sum(len(x) for x in audio) / 16000.0
    res = {"audio_s": secs, "files": len(audio), "onnxruntime": onnxruntime.__version__}
    m = load_silero_vad(onnx=True)
    c0, w0 = time.process_time(), time.time()
    for x in audio:
        m.reset_states()
        t = torch.from_numpy(x)
        for i in range(0, len(x), 512):
            ch = t[i:i + 512]
            if len(ch) < 512:
                ch = torch.nn.functional.pad(ch, (0, 512 - len(ch)))
            m(ch, 16000)
    cpu, wall = time.process_time() - c0, time.time() - w0
    res["silero_onnx_per_chunk"] = {"cpu_s": cpu, "wall_s": wall, "audio_s_per_cpu_s": secs / cpu}
    fwm = fv.get_vad_model()
    c0, w0 = time.process_time(), time.time()
    for x in audio:
        fwm(np.pad(x, (0, 512 - len(x) % 512)))
    cpu, wall = time.process_time() - c0, time.time() - w0
    res["faster_whisper_onnx_batched"] = {"cpu_s": cpu, "wall_s": wall,
                                          "audio_s_per_cpu_s": secs / cpu}
    json.dump(res, open(out, "w"), indent=1)


def summary(outdir):
    """summary.md from the JSON files and bench_vad's tables in outdir."""
    L = []
    tw = json.load(open(os.path.join(outdir, "nonspeech-tolk.json")))
    fw = json.load(open(os.path.join(outdir, "nonspeech-faster-whisper.json")))
    L.append("## Words emitted on non-speech (base, greedy)\n")
    L.append("words: whitespace-separated (characters of the text in brackets: CJK text has no "
             "spaces)\n")
    L.append("| clip | tolk | tolk --vad_filter | %s | %s vad_filter=True |" % (fw["engine"],
                                                                             fw["engine"]))
    L.append("|---|---:|---:|---:|---:|")
    tot = [0, 0, 0, 0]
    texts = []
    for clip, v in tw["clips"].items():
        f = fw["clips"][clip]
        cells = [v["vad_false"], v["vad_true"], f["vad_false"], f["vad_true"]]
        tot = [a + c["words"] for a, c in zip(tot, cells)]
        L.append("| %s | %s |" % (clip, " | ".join(
            "%d (%d)" % (c["words"], len(c["text"])) if c["text"] else "0" for c in cells)))
        for name, c in zip(("tolk", "tolk --vad_filter", "faster-whisper",
                            "faster-whisper vad_filter"), cells):
            if c["text"]:
                texts.append("- %s, %s: %s" % (clip, name, c["text"][:120]))
    L.append("| **total words** | **%d** | **%d** | **%d** | **%d** |" % tuple(tot))
    L.append("")
    L.extend(texts or ["(no text at all)"])
    L.append("")
    w = json.load(open(os.path.join(outdir, "wer.json")))
    off, on = w["runs"]["vad_false"], w["runs"]["vad_true"]
    L.append("## Shared asr.tsv, tolk base greedy: WER with and without --vad_filter\n")
    L.append("| | WER % | files | wall s |")
    L.append("|---|---:|---:|---:|")
    L.append("| --vad_filter False | %.2f | %d | %.0f |" % (off["wer"], off["files"], off["wall_s"]))
    L.append("| --vad_filter True | %.2f | %d | %.0f |" % (on["wer"], on["files"], on["wall_s"]))
    L.append("\nclips: %s (%s); wall times: several tolk processes at once, resumed runs: not a "
             "speed figure" % (off.get("rows", "all"), off.get("audio_s", "?")))
    L.append("\ndifference (on - off): %+.2f WER points\n" % w["wer_delta"])
    langs = sorted(off["per_language"])
    L.append("| language | off | on |")
    L.append("|---|---:|---:|")
    for lang in langs:
        L.append("| %s | %.2f | %.2f |" % (lang, off["per_language"][lang]["wer"],
                                         on["per_language"][lang]["wer"]))
    L.append("")
    o = json.load(open(os.path.join(outdir, "speed-onnx.json")))
    L.append("## VAD speed (audio seconds per CPU second)\n")
    L.append("| engine | audio s | audio s / CPU s |")
    L.append("|---|---:|---:|")
    for name in sorted(f for f in os.listdir(outdir) if f.startswith("speed-tolk-")):
        thr, _, env = name[len("speed-tolk-"):-4].partition("-")
        rows = list(csv.DictReader(open(os.path.join(outdir, name)), delimiter="\t"))
        for r in rows:
            L.append("| tolk %s (%s thread%s%s) | %s | %s |" % (
                r["mode"], thr, "" if thr == "1" else "s", ", " + env if env else "",
                r["audio_s"], r["audio_s_per_cpu_s"]))
    L.append("| silero-vad ONNX, onnxruntime %s, per chunk (its OnnxWrapper) | %.1f | %.0f |" % (
        o["onnxruntime"], o["audio_s"], o["silero_onnx_per_chunk"]["audio_s_per_cpu_s"]))
    L.append("| faster-whisper's ONNX (v6.0 weights), all chunks batched | %.1f | %.0f |" % (
        o["audio_s"], o["faster_whisper_onnx_batched"]["audio_s_per_cpu_s"]))
    open(os.path.join(outdir, "summary.md"), "w").write("\n".join(L) + "\n")
    print("\n".join(L))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tolk-words":
        tolk_words(*args)
    elif cmd == "fw-words":
        fw_words(*args)
    elif cmd == "wer":
        wer(*args)
    elif cmd == "wer-done":
        wer_done(*args)
    elif cmd == "summary":
        summary(args[0])
    elif cmd == "onnx-speed":
        onnx_speed(args[0], args[1:])
    else:
        sys.exit("bench/vad.py: unknown subcommand %s" % cmd)


if __name__ == "__main__":
    main()
