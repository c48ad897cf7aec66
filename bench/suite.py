#!/usr/bin/env python3
"""bench/suite.py — run tolk and peer Whisper engines on the same manifest and weights, score them
with the field's own tools (Whisper's text normalisers + jiwer, sacrebleu) and write a report.

Started by bench/suite (which makes the virtual environment). Each engine runs in its own child
process so that its peak memory (ru_maxrss) and wall time are measured alone, model load included.

Engines:
  tolk         build/tolk transcribe (one call for all files, JSON outputs)
  fw-f32       faster-whisper, compute_type float32, same CTranslate2 directory
  fw-int8      faster-whisper, compute_type int8, same directory
  openai       openai-whisper on the same weights converted to its checkpoint format
  whisper.cpp  whisper-cli from a source checkout (--whisper-cpp DIR), f16 ggml made from the same weights
"""
import argparse
import csv
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ENGINES = ["tolk", "fw-f32", "fw-int8", "openai", "whisper.cpp"]
PRECISION = {"tolk": "float32", "fw-f32": "float32", "fw-int8": "int8", "openai": "float32",
             "whisper.cpp": "float16"}
CJK = {"zh", "ja", "ko", "th", "yue"}


# --------------------------------------------------------------------------- manifest

def read_manifest(path, limit=None):
    """Rows of a tolk manifest (asr.tsv or translate.tsv layout) with absolute file paths."""
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if "file" not in header or "reference" not in header:
            raise SystemExit(f"{path}:1: the header needs 'file' and 'reference' columns")
        for n, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != len(header):
                raise SystemExit(f"{path}:{n}: {len(cols)} columns, the header has {len(header)}")
            r = dict(zip(header, cols))
            r["path"] = r["file"] if os.path.isabs(r["file"]) else os.path.join(base, r["file"])
            if not os.path.exists(r["path"]):
                raise SystemExit(f"{path}:{n}: no such file: {r['path']}")
            r["language"] = r.get("language") or r.get("source_language") or ""
            rows.append(r)
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows[:limit] if limit else rows


# --------------------------------------------------------------------------- engines (children)

def child_faster_whisper(a):
    from faster_whisper import WhisperModel
    model = WhisperModel(a.model_dir, device="cpu", compute_type=a.compute, cpu_threads=a.threads)
    out = []
    for r in json.load(open(a.files)):
        t0 = time.perf_counter()
        segs, info = model.transcribe(r["path"], task=a.task, language=r.get("lang_arg"),
                                      beam_size=a.beam, best_of=a.beam if a.beam > 1 else 1,
                                      temperature=temps(a), vad_filter=False)
        text = "".join(s.text for s in segs)
        out.append({"file": r["file"], "text": text.strip(), "language": info.language,
                    "audio_s": info.duration, "wall_s": time.perf_counter() - t0})
    json.dump(out, open(a.result, "w"))


def child_openai(a):
    import torch
    import whisper
    torch.set_num_threads(a.threads)
    model = whisper.load_model(a.checkpoint, device="cpu")
    out = []
    for r in json.load(open(a.files)):
        t0 = time.perf_counter()
        audio = whisper.load_audio(r["path"])
        res = model.transcribe(audio, task=a.task, language=r.get("lang_arg"), fp16=False,
                               beam_size=a.beam if a.beam > 1 else None,
                               best_of=a.beam if a.beam > 1 else None, temperature=temps(a))
        out.append({"file": r["file"], "text": res["text"].strip(), "language": res["language"],
                    "audio_s": len(audio) / 16000, "wall_s": time.perf_counter() - t0})
    json.dump(out, open(a.result, "w"))


def temps(a):
    return 0.0 if a.beam <= 1 else (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def run_child(argv):
    """Run argv; return (wall seconds, peak RSS in MiB of that child)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{argv[0]} exited with {code}")
    return wall, ru.ru_maxrss / 1024.0


def run_engine(engine, model, rows, a, work):
    """Run one engine on rows; returns (per-file results, total wall, peak MiB) or raises."""
    files = os.path.join(work, f"{engine}-{model}-files.json")
    result = os.path.join(work, f"{engine}-{model}-result.json")
    for r in rows:
        r["lang_arg"] = (r["language"] or None) if a.language_given else None
    json.dump(rows, open(files, "w"))
    beam = a.beam
    model_dir = model_path(a, model)
    if engine == "tolk":
        outdir = os.path.join(work, f"tolk-{model}-{a.decoding}")
        os.makedirs(outdir, exist_ok=True)
        argv = [os.path.join(a.root, "build", "tolk"), a.task, "--model", model_dir, "--threads",
                str(a.threads), "--beam_size", str(beam), "--best_of", str(max(beam, 1)),
                "-f", "json", "-o", outdir, "--verbose", "False"]
        if beam <= 1:
            argv += ["--temperature_increment_on_fallback", "0"]
        # tolk takes one language for all files: group by language when it is given
        groups = {}
        for r in rows:
            groups.setdefault(r["lang_arg"], []).append(r)
        wall = peak = 0.0
        for lang, rs in groups.items():
            cmd = argv + (["--language", lang] if lang else []) + [r["path"] for r in rs]
            w, p = run_child(cmd)
            wall, peak = wall + w, max(peak, p)
        out = []
        for r in rows:
            stem = os.path.splitext(os.path.basename(r["path"]))[0]
            j = json.load(open(os.path.join(outdir, stem + ".json"), encoding="utf-8"))
            out.append({"file": r["file"], "text": j["text"].strip(), "language": j["language"],
                        "audio_s": None, "wall_s": None})
        return out, wall, peak
    if engine in ("fw-f32", "fw-int8"):
        argv = [sys.executable, __file__, "_child", "fw", "--model-dir", model_dir, "--compute",
                "float32" if engine == "fw-f32" else "int8"]
    elif engine == "openai":
        ckpt = os.path.join(a.models_root, f"{model}.openai.pt")
        if not os.path.exists(ckpt):
            subprocess.check_call([sys.executable, os.path.join(a.root, "scripts", "convert-model"),
                                   "--to", "openai", model_dir, ckpt])
        argv = [sys.executable, __file__, "_child", "openai", "--checkpoint", ckpt]
    elif engine == "whisper.cpp":
        return run_whisper_cpp(model, rows, a, work)
    else:
        raise ValueError(engine)
    argv += ["--files", files, "--result", result, "--threads", str(a.threads), "--task", a.task,
             "--beam", str(beam)]
    wall, peak = run_child(argv)
    return json.load(open(result)), wall, peak


def run_whisper_cpp(model, rows, a, work):
    if not a.whisper_cpp:
        raise RuntimeError("no whisper.cpp checkout given (--whisper-cpp DIR)")
    cli = None
    for c in ("build/bin/whisper-cli", "build/bin/main", "main"):
        if os.path.exists(os.path.join(a.whisper_cpp, c)):
            cli = os.path.join(a.whisper_cpp, c)
            break
    if not cli:
        raise RuntimeError(f"whisper-cli not built in {a.whisper_cpp} (cmake -B build && cmake --build build)")
    ggml = os.path.join(a.models_root, f"{model}.ggml.bin")
    if not os.path.exists(ggml):
        subprocess.check_call([sys.executable, os.path.join(a.root, "scripts", "convert-model"),
                               "--to", "ggml", model_path(a, model), ggml])
    # whisper-cli reads 16 kHz WAV: convert outside the timed run
    wavdir = os.path.join(work, "wav")
    os.makedirs(wavdir, exist_ok=True)
    import soundfile as sf
    wavs = []
    for i, r in enumerate(rows):
        w = os.path.join(wavdir, f"{i:04d}.wav")
        if not os.path.exists(w):
            data, sr = sf.read(r["path"], dtype="int16")
            if sr != 16000:
                raise RuntimeError(f"{r['path']}: {sr} Hz; whisper.cpp needs 16 kHz")
            sf.write(w, data, 16000, subtype="PCM_16")
        wavs.append(w)
    outdir = os.path.join(work, f"wcpp-{model}-{a.decoding}")
    os.makedirs(outdir, exist_ok=True)
    wall = peak = 0.0
    for lang in sorted({r["lang_arg"] or "auto" for r in rows}):
        sel = [i for i, r in enumerate(rows) if (r["lang_arg"] or "auto") == lang]
        argv = [cli, "-m", ggml, "-t", str(a.threads), "-l", lang, "-np", "-otxt",
                "-bs", str(max(a.beam, 1)), "-bo", str(max(a.beam, 1))]
        if a.beam <= 1:
            argv += ["-nf"]
        if a.task == "translate":
            argv += ["-tr"]
        for i in sel:
            argv += ["-f", wavs[i]]
        w, p = run_child(argv)
        wall, peak = wall + w, max(peak, p)
    out = []
    for i, r in enumerate(rows):
        txt = open(wavs[i] + ".txt", encoding="utf-8").read()
        out.append({"file": r["file"], "text": " ".join(txt.split()), "language": None,
                    "audio_s": None, "wall_s": None})
        os.remove(wavs[i] + ".txt")
    return out, wall, peak


def model_path(a, model):
    return subprocess.check_output([os.path.join(a.root, "scripts", "get-model"), model],
                                   text=True).strip().splitlines()[-1]


# --------------------------------------------------------------------------- scoring

def score_asr(rows, hyps):
    import jiwer
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer
    en, basic = EnglishTextNormalizer(), BasicTextNormalizer()
    refs_w, hyps_w, refs_c, hyps_c = [], [], [], []
    for r, h in zip(rows, hyps):
        norm = en if r["language"] == "en" else basic
        ref, hyp = norm(r["reference"]), norm(h["text"])
        if r["language"] in CJK:
            refs_c.append(ref)
            hyps_c.append(hyp)
        elif ref.strip():
            refs_w.append(ref)
            hyps_w.append(hyp)
    s = {}
    if refs_w:
        s["wer"] = 100 * jiwer.wer(refs_w, hyps_w)
    if refs_c:
        s["cer"] = 100 * jiwer.cer(refs_c, hyps_c)
    return s


def score_translate(rows, hyps):
    import sacrebleu
    refs = [[r["reference"] for r in rows]]
    sys_ = [h["text"] for h in hyps]
    return {"bleu": sacrebleu.corpus_bleu(sys_, refs).score,
            "chrf": sacrebleu.corpus_chrf(sys_, refs).score}


# --------------------------------------------------------------------------- report

# Published figures for context (not run here). Each cites its source.
PUBLISHED = [
    # (set, model, metric, value, source)
    ("LibriSpeech test-clean", "large-v2", "WER", 2.7,
     "Radford et al. 2022, Robust Speech Recognition via Large-Scale Weak Supervision, Table 2"),
]


def write_report(out, results, a):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    keys = ["set", "model", "decoding", "engine", "precision", "status", "wer", "cer", "bleu", "chrf",
            "audio_s", "wall_s", "rtfx", "peak_mib", "time_vs_tolk", "agree_with_tolk"]
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in results:
            w.writerow(r)
    md = [f"# tolk benchmark — {datetime.date.today().isoformat()}", "",
          f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.platform()}; threads: {a.threads}.", ""]
    groups = {}
    for r in results:
        groups.setdefault((r["set"], r["model"], r["decoding"]), []).append(r)
    for (set_, model, dec), rs in groups.items():
        md += [f"## {set_} — {model}, {dec}", ""]
        metric = ["BLEU", "chrF"] if set_ == "translate" else ["WER %", "CER %"]
        md.append("| engine | precision | " + " | ".join(metric) +
                  " | RTFx | total s | peak MiB | time / tolk | same text as tolk |")
        md.append("|---|---|" + "---|" * len(metric) + "---|---|---|---|---|")
        for r in rs:
            if r["status"] != "ok":
                md.append(f"| {r['engine']} | {r['precision']} | skipped: {r['status']} |")
                continue
            vals = ([r.get("bleu"), r.get("chrf")] if set_ == "translate"
                    else [r.get("wer"), r.get("cer")])
            cells = ["–" if v is None else f"{v:.2f}" for v in vals]
            md.append(f"| {r['engine']} | {r['precision']} | " + " | ".join(cells) +
                      f" | {r['rtfx']:.1f} | {r['wall_s']:.1f} | {r['peak_mib']:.0f} | "
                      f"{r['time_vs_tolk']:.2f} | {r['agree_with_tolk']} |")
        md.append("")
    md += ["## Published reference figures (not run here)", "",
           "| set | model | metric | value | source |", "|---|---|---|---|---|"]
    for s, m, k, v, src in PUBLISHED:
        md.append(f"| {s} | {m} | {k} | {v} | {src} |")
    open(os.path.join(out, "report.md"), "w").write("\n".join(md) + "\n")
    try:
        plot(out, results)
    except Exception as e:  # plots are a convenience: never lose the report over them
        print(f"suite: plots skipped: {e}", file=sys.stderr)


def plot(out, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in results if r["status"] == "ok" and r.get("wer") is not None]
    if not ok:
        return
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in ok:
        ax.scatter(r["rtfx"], r["wer"], label=f"{r['engine']} {r['model']} {r['decoding']}")
    ax.set_xlabel("speed (RTFx, audio seconds per wall second)")
    ax.set_ylabel("WER %")
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    ax.set_title("WER vs speed")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "wer_vs_speed.png"), dpi=120)


# --------------------------------------------------------------------------- main

def main():
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        kind = sys.argv[2]
        p = argparse.ArgumentParser()
        p.add_argument("--model-dir")
        p.add_argument("--checkpoint")
        p.add_argument("--compute", default="float32")
        p.add_argument("--files")
        p.add_argument("--result")
        p.add_argument("--threads", type=int)
        p.add_argument("--task")
        p.add_argument("--beam", type=int)
        a = p.parse_args(sys.argv[3:])
        (child_faster_whisper if kind == "fw" else child_openai)(a)
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", required=True)
    p.add_argument("--manifest", action="append")
    p.add_argument("--models", default="tiny.en,base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--decoding", default="greedy,beam5")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--whisper-cpp", default=os.environ.get("WHISPER_CPP_DIR"))
    p.add_argument("--language-given", action="store_true",
                   help="pass each file's manifest language instead of detecting it")
    p.add_argument("--limit", type=int)
    p.add_argument("--out")
    a = p.parse_args()
    shared = os.path.join(a.root, "..", "shared", "data", "speech")
    manifests = a.manifest or [os.path.join(shared, "asr.tsv"), os.path.join(shared, "translate.tsv")]
    a.models_root = os.environ.get("TOLK_MODELS", os.path.expanduser("~/.cache/tolk/models"))
    out = a.out or os.path.join(a.root, "bench", "results",
                                f"{datetime.date.today().isoformat()}-{platform.node()}")
    results = []
    work = tempfile.mkdtemp(prefix="tolk-suite-")
    try:
        for man in manifests:
            set_ = "translate" if "source_language" in open(man).readline() else "asr"
            rows = read_manifest(man, a.limit)
            audio_s = sum(float(r.get("duration_s") or 0) for r in rows)
            for model in a.models.split(","):
                if set_ == "translate" and model.endswith(".en"):
                    continue
                for dec in a.decoding.split(","):
                    a.decoding_name = dec
                    a.decoding = dec
                    a.beam = 5 if dec == "beam5" else 1
                    a.task = "translate" if set_ == "translate" else "transcribe"
                    tolk_texts = None
                    tolk_wall = None
                    for eng in a.engines.split(","):
                        rec = {"set": set_, "model": model, "decoding": dec, "engine": eng,
                               "precision": PRECISION[eng], "audio_s": audio_s}
                        print(f"suite: {set_} {model} {dec} {eng} ({len(rows)} files) ...",
                              file=sys.stderr, flush=True)
                        try:
                            hyps, wall, peak = run_engine(eng, model, rows, a, work)
                        except Exception as e:
                            rec["status"] = str(e).splitlines()[0][:200]
                            print(f"suite:   skipped: {rec['status']}", file=sys.stderr)
                            results.append(rec)
                            continue
                        rec.update(score_translate(rows, hyps) if set_ == "translate"
                                   else score_asr(rows, hyps))
                        texts = [h["text"] for h in hyps]
                        if eng == "tolk":
                            tolk_texts, tolk_wall = texts, wall
                        rec.update(status="ok", wall_s=wall, peak_mib=peak,
                                   rtfx=audio_s / wall if wall else 0.0,
                                   time_vs_tolk=(wall / tolk_wall) if tolk_wall else float("nan"),
                                   agree_with_tolk=(f"{sum(x == y for x, y in zip(texts, tolk_texts))}"
                                                    f"/{len(texts)}") if tolk_texts else "–",
                                   files=[dict(h, reference=r["reference"]) for h, r in zip(hyps, rows)])
                        print(f"suite:   {wall:.1f} s, peak {peak:.0f} MiB", file=sys.stderr)
                        results.append(rec)
        write_report(out, results, a)
        print(f"suite: report in {out}/report.md", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
