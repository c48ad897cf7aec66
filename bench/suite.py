#!/usr/bin/env python3
"""bench/suite.py — run tolk and peer Whisper engines on the same manifests and the same weights,
score them with the field's own tools (Whisper's text normalisers + jiwer, sacrebleu) and write a
report: report.md, results.csv, per_file.csv, results.json and PNG plots.

Started by bench/suite (which makes the Python environment). Every engine runs in child processes,
so that its wall time and peak memory (ru_maxrss) are its own, model load included.

Engines (all from one CTranslate2 directory installed by scripts/get-model):
  tolk         `tolk bench` (JSON lines: per-file hypothesis, wall and per-stage seconds)
  tolk-bf16    the same with --compute_type bfloat16 (AVX-512 BF16 products; float32 elsewhere)
  fw-f32       faster-whisper, compute_type float32, the same CTranslate2 directory
  fw-int8      faster-whisper, compute_type int8, the same directory
  openai       openai-whisper, float32, the same weights written as its checkpoint (.pt)
  whisper.cpp  whisper-cli from a source checkout (--whisper-cpp DIR or WHISPER_CPP_DIR), float16
               ggml written by scripts/convert-model from the same weights; skipped with a notice
               when absent

Matched settings: the same threads (one process each, one worker), the same decoding (greedy:
temperature 0, beam 1, no fallback; fallback: greedy at temperature 0 with the fallback 0.2, ... 1.0
and best_of 5, openai-whisper's transcribe() defaults; beam5: beam 5, best_of 5, the same
fallback, openai-whisper's command-line defaults), the same
language handling (given from the manifest, or detected with --detect-language), timestamps on,
conditioning on previous text on, no VAD. Each engine decodes the audio files itself.

Scoring: WER (CER for zh, ja, ko, th, yue) with jiwer on text normalised by Whisper's
EnglishTextNormalizer (English) or BasicTextNormalizer (other languages), corpus-level (errors summed
over files); BLEU and chrF with sacrebleu (corpus-level, default 13a tokenisation) for translation.
"""
import argparse
import csv
import datetime
import importlib.machinery
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ENGINES = ["tolk", "tolk-bf16", "fw-f32", "fw-int8", "openai", "whisper.cpp"]
PRECISION = {"tolk": "float32", "tolk-bf16": "bfloat16", "fw-f32": "float32", "fw-int8": "int8", "openai": "float32",
             "whisper.cpp": "float16"}
CER_LANGUAGES = {"zh", "ja", "ko", "th", "yue", "my", "lo"}

# Published figures for the same public test sets, as reference rows (not run here). Only figures
# that can be cited to a table or a file are listed.
PUBLISHED = [
    # (test set, language, model, metric, value, source)
    ("LibriSpeech test-clean", "en", "large-v2", "WER %", 2.7,
     "Radford et al., Robust Speech Recognition via Large-Scale Weak Supervision, arXiv:2212.04356, "
     "Table 2 (zero-shot Whisper Large V2)"),
    ("FLEURS", "en", "large-v3", "WER %", 4.1,
     "openai/whisper language-breakdown.svg, FLEURS panel, bar label (commit c5d4256, 2023-11-06)"),
    ("FLEURS", "es", "large-v3", "WER %", 2.8, "same file, FLEURS panel"),
    ("FLEURS", "de", "large-v3", "WER %", 4.9, "same file, FLEURS panel"),
    ("FLEURS", "nl", "large-v3", "WER %", 5.2, "same file, FLEURS panel"),
    ("Common Voice 15", "en", "large-v3", "WER %", 9.3, "same file, Common Voice 15 panel"),
    ("Common Voice 15", "es", "large-v3", "WER %", 4.7, "same file, Common Voice 15 panel"),
    ("Common Voice 15", "de", "large-v3", "WER %", 5.7, "same file, Common Voice 15 panel"),
    ("Common Voice 15", "nl", "large-v3", "WER %", 4.3, "same file, Common Voice 15 panel"),
    ("CoVoST2 X→en (21 languages)", "all", "largest Whisper model of the paper", "BLEU", 29.1,
     "Radford et al., arXiv:2212.04356, §3.5 and Table 4 (zero-shot, all languages)"),
]


def log(msg):
    print(f"suite: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- manifest

def read_manifest(path, limit=None):
    """Rows of a manifest (asr.tsv / translate.tsv layout) with absolute paths; exits naming the
    line on a problem (as `tolk bench` does)."""
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].strip():
        raise SystemExit(f"{path}:1: empty manifest (expected a header with a 'file' column)")
    header = lines[0].split("\t")
    if "file" not in header:
        raise SystemExit(f"{path}:1: no 'file' column in the header")
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(header):
            raise SystemExit(f"{path}:{n}: {len(cols)} columns, the header has {len(header)}")
        r = dict(zip(header, cols))
        r["line"] = n
        r["path"] = r["file"] if os.path.isabs(r["file"]) else os.path.join(base, r["file"])
        if not os.path.isfile(r["path"]):
            raise SystemExit(f"{path}:{n}: {r['file']}: no such file")
        r["language"] = r.get("language") or r.get("source_language") or ""
        r.setdefault("reference", "")
        rows.append(r)
    if not rows:
        raise SystemExit(f"{path}:{len(lines) + 1}: no rows after the header")
    return rows[:limit] if limit else rows


def probe_duration(path):
    """Seconds of audio in path (PyAV, which faster-whisper brings), or None."""
    try:
        import av
        with av.open(path) as c:
            st = c.streams.audio[0]
            if st.duration is not None and st.time_base is not None:
                return float(st.duration * st.time_base)
            if c.duration is not None:
                return c.duration / 1e6
    except Exception:  # not fatal: the engines report durations too
        return None
    return None


def write_manifest(rows, path):
    """A manifest of rows with absolute paths (what every engine reads)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("file\tlanguage\treference\n")
        for r in rows:
            ref = r["reference"].replace("\t", " ").replace("\n", " ")
            f.write(f"{r['path']}\t{r['language']}\t{ref}\n")


# --------------------------------------------------------------------------- scoring

def normalizers():
    """(English, basic) text normalisers: the whisper-normalizer package, else openai-whisper's."""
    try:
        from whisper_normalizer.basic import BasicTextNormalizer
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer
    return EnglishTextNormalizer(), BasicTextNormalizer()


_NORM = None


def normalize(text, language):
    """Whisper's normalisation: EnglishTextNormalizer for English, BasicTextNormalizer otherwise;
    whitespace collapsed."""
    global _NORM
    if _NORM is None:
        _NORM = normalizers()
    en, basic = _NORM
    out = (en if language == "en" else basic)(text or "")
    return " ".join(out.split())


def uses_cer(language):
    return language in CER_LANGUAGES


def score_asr(refs, hyps, languages):
    """Corpus-level error rates in percent over files with a non-empty normalised reference:
    {"wer": ..., "cer": ..., "n_wer": files, "n_cer": files, "per_language": {lang: {"wer"|"cer":
    ...}}}. WER for word-delimited languages, CER for CER_LANGUAGES (spaces removed)."""
    import jiwer
    groups = {}
    for ref, hyp, lang in zip(refs, hyps, languages):
        r, h = normalize(ref, lang), normalize(hyp, lang)
        if not r:
            continue
        kind = "cer" if uses_cer(lang) else "wer"
        if kind == "cer":
            r, h = r.replace(" ", ""), h.replace(" ", "")
        groups.setdefault(kind, {}).setdefault(lang, ([], []))
        groups[kind][lang][0].append(r)
        groups[kind][lang][1].append(h)
    out = {"per_language": {}}
    for kind, by_lang in groups.items():
        fn = jiwer.wer if kind == "wer" else jiwer.cer
        all_r = [x for rs, _ in by_lang.values() for x in rs]
        all_h = [x for _, hs in by_lang.values() for x in hs]
        out[kind] = 100.0 * fn(all_r, all_h)
        out["n_" + kind] = len(all_r)
        for lang, (rs, hs) in by_lang.items():
            out["per_language"][lang] = {kind: 100.0 * fn(rs, hs), "n": len(rs)}
    return out


def score_translation(refs, hyps):
    """Corpus BLEU and chrF (sacrebleu defaults) of hyps against one reference each."""
    import sacrebleu
    hyps = [" ".join((h or "").split()) for h in hyps]
    refs = [" ".join((r or "").split()) for r in refs]
    return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score}


# --------------------------------------------------------------------------- children

def decoding_kwargs(beam, fallback=None):
    """(beam_size, best_of, temperatures) of a decoding: beam 1 is greedy; fallback (the default:
    with beams) adds the temperature schedule 0.2 ... 1.0 with best_of 5 samples, as
    openai-whisper's transcribe() does when a window fails its thresholds."""
    if fallback is None:
        fallback = beam > 1
    if not fallback:
        return beam, 1, (0.0,)
    return beam, 5, (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def decoding_of(name):
    """(beam, fallback) of a --decoding name: greedy (no fallback), fallback (greedy at T=0 with
    the temperature fallback: openai-whisper's transcribe() defaults), beamN (N beams at T=0 with
    the fallback: openai-whisper's command-line defaults for N=5)."""
    if name == "greedy":
        return 1, False
    if name == "fallback":
        return 1, True
    return int(name[4:]), True


def child_faster_whisper(a):
    from faster_whisper import WhisperModel
    t0 = time.perf_counter()
    model = WhisperModel(a.model_dir, device="cpu", compute_type=a.compute, cpu_threads=a.threads,
                         num_workers=1)
    load_s = time.perf_counter() - t0
    beam, best_of, temps = decoding_kwargs(a.beam, a.fallback)
    rows = json.load(open(a.files))
    out = []
    for i, r in enumerate(rows):
        t0 = time.perf_counter()
        segs, info = model.transcribe(r["path"], task=a.task, language=r.get("lang_arg"),
                                      beam_size=beam, best_of=best_of, temperature=list(temps),
                                      condition_on_previous_text=True, vad_filter=False,
                                      without_timestamps=False)
        segs = list(segs)  # the generator decodes here
        wall = time.perf_counter() - t0
        text = "".join(s.text for s in segs)
        out.append({"file": r["file"], "text": text.strip(), "language": info.language,
                    "audio_s": info.duration, "wall_s": wall,
                    "max_temperature": max((s.temperature for s in segs), default=0.0)})
        progress(a, i, len(rows), r, wall)
    json.dump({"load_s": load_s, "files": out}, open(a.result, "w"))


def child_openai(a):
    import torch
    import whisper
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    t0 = time.perf_counter()
    model = whisper.load_model(a.checkpoint, device="cpu")
    load_s = time.perf_counter() - t0
    beam, best_of, temps = decoding_kwargs(a.beam, a.fallback)
    rows = json.load(open(a.files))
    out = []
    for i, r in enumerate(rows):
        t0 = time.perf_counter()
        audio = whisper.load_audio(r["path"])  # ffmpeg, as openai-whisper does
        res = model.transcribe(audio, task=a.task, language=r.get("lang_arg"), fp16=False,
                               beam_size=beam if beam > 1 else None,
                               best_of=best_of if len(temps) > 1 else None, temperature=temps,
                               condition_on_previous_text=True, verbose=None)
        wall = time.perf_counter() - t0
        out.append({"file": r["file"], "text": res["text"].strip(), "language": res["language"],
                    "audio_s": len(audio) / 16000.0, "wall_s": wall,
                    "max_temperature": max((s["temperature"] for s in res["segments"]),
                                           default=0.0)})
        progress(a, i, len(rows), r, wall)
    json.dump({"load_s": load_s, "files": out}, open(a.result, "w"))


def progress(a, i, n, r, wall):
    print(f"suite:   {a.label} [{i + 1}/{n}] {os.path.basename(r['path'])} {wall:.2f} s",
          file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- running engines

def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


TIME = "/usr/bin/time"


def run_child(argv, stdout=None, stderr=None):
    """Run argv; returns (wall seconds, peak RSS MiB, exit code, CPU seconds (user + system)) of
    that child. Peak and CPU come from GNU time (%M %U %S) where /usr/bin/time exists: a child
    forked from this Python process would otherwise inherit this process's resident-set
    high-water mark (Linux keeps ru_maxrss across exec), larger than a small engine's."""
    use_time = os.access(TIME, os.X_OK)
    fd, tfile = tempfile.mkstemp(prefix="tolk-suite-rss-")
    os.close(fd)
    full = [TIME, "-f", "%M %U %S", "-o", tfile] + list(argv) if use_time else list(argv)
    t0 = time.perf_counter()
    p = subprocess.Popen(full, stdout=stdout, stderr=stderr)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    peak = ru.ru_maxrss / 1024.0
    cpu = ru.ru_utime + ru.ru_stime
    if use_time:
        try:
            last = open(tfile).read().strip().splitlines()[-1].split()
            peak, cpu = int(last[0]) / 1024.0, float(last[1]) + float(last[2])
        except (OSError, IndexError, ValueError):
            pass
    os.unlink(tfile)
    return wall, peak, os.waitstatus_to_exitcode(status), cpu


def tolk_bin(a):
    for c in ([a.tolk] if a.tolk else []) + [os.path.join(a.root, "build", "tolk")]:
        if c and os.access(c, os.X_OK):
            return c
    raise RuntimeError("tolk not built (scripts/build, or --tolk PATH)")


def run_engine(engine, model, rows, a, work, label):
    """Run one engine on rows. Returns a dict: files (per-file dicts), wall_s (child process wall,
    model load included), load_s, peak_mib; raises RuntimeError when the engine cannot run."""
    files_json = os.path.join(work, f"{label}-files.json")
    result = os.path.join(work, f"{label}-result.json")
    json.dump(rows, open(files_json, "w"))
    model_dir = model_path(a, model)
    if engine in ("tolk", "tolk-bf16"):
        man = os.path.join(work, f"{label}.tsv")
        write_manifest(rows, man)
        out = os.path.join(work, f"{label}.jsonl")
        beam, best_of, temps = decoding_kwargs(a.beam, a.fallback)
        argv = [tolk_bin(a), "bench", man, "--model", model_dir, "--threads", str(a.threads),
                "--device", "cpu", "--task", a.task, "--warmup", "0", "-o", out,
                "--best_of", str(best_of)]
        if engine == "tolk-bf16":
            argv += ["--compute_type", "bfloat16"]
        argv += ["--beam_size", str(beam)] if beam > 1 else ["--beam_size", "None"]
        if len(temps) == 1:
            argv += ["--temperature_increment_on_fallback", "None"]
        argv += ["--language", "manifest" if a.language_given else "auto"]
        wall, peak, code, cpu = run_child(argv)
        if not os.path.exists(out):
            raise RuntimeError(f"tolk bench exited with {code} and wrote nothing")
        lines = [json.loads(x) for x in open(out, encoding="utf-8")]
        summ = [x for x in lines if x["type"] == "summary"]
        files = []
        for x in (x for x in lines if x["type"] == "file"):
            files.append({"file": rows[x["index"]]["file"], "text": (x.get("hypothesis") or "").strip(),
                          "language": x.get("language"), "audio_s": x.get("audio_s"),
                          "wall_s": x.get("wall_s"), "stages": x.get("stages"),
                          "tokens": x.get("tokens"), "status": x.get("status"),
                          "error": x.get("error"), "max_temperature": x.get("max_temperature")})
        return {"files": files, "wall_s": wall, "peak_mib": peak, "cpu_s": cpu,
                "load_s": summ[0]["model_load_s"] if summ else None,
                "stages": summ[0]["stages"] if summ else None}
    if engine == "whisper.cpp":
        return run_whisper_cpp(model, rows, a, work, label)
    if engine in ("fw-f32", "fw-int8"):
        argv = [sys.executable, os.path.abspath(__file__), "_child", "fw", "--model-dir", model_dir,
                "--compute", "float32" if engine == "fw-f32" else "int8"]
    elif engine == "openai":
        argv = [sys.executable, os.path.abspath(__file__), "_child", "openai", "--checkpoint",
                openai_checkpoint(a, model)]
    else:
        raise RuntimeError(f"unknown engine {engine}")
    argv += ["--files", files_json, "--result", result, "--threads", str(a.threads), "--task",
             a.task, "--beam", str(a.beam), "--fallback", str(int(a.fallback)), "--label", label]
    wall, peak, code, cpu = run_child(argv)
    if code != 0 or not os.path.exists(result):
        raise RuntimeError(f"{engine} exited with {code}")
    res = json.load(open(result))
    return {"files": res["files"], "wall_s": wall, "peak_mib": peak, "load_s": res["load_s"],
            "cpu_s": cpu}


def whisper_cpp_cli(a):
    if not a.whisper_cpp:
        raise RuntimeError("no whisper.cpp checkout given (--whisper-cpp DIR or WHISPER_CPP_DIR)")
    for c in ("build/bin/whisper-cli", "build/bin/main"):
        p = os.path.join(a.whisper_cpp, c)
        if os.access(p, os.X_OK):
            return p
    raise RuntimeError(f"whisper-cli not built in {a.whisper_cpp} "
                       "(there: cmake -B build && cmake --build build -j)")


def run_whisper_cpp(model, rows, a, work, label):
    """One whisper-cli process per file (it prints its timings only at exit): per-file seconds =
    that process's total time minus its model load time; wall = one load + the per-file times."""
    cli = whisper_cpp_cli(a)
    ggml = ggml_model(a, model)
    beam, best_of, temps = decoding_kwargs(a.beam, a.fallback)
    outdir = os.path.join(work, label)
    os.makedirs(outdir, exist_ok=True)
    files, peak, loads, total_wall, cpu_s = [], 0.0, [], 0.0, 0.0
    for i, r in enumerate(rows):
        of = os.path.join(outdir, f"{i:05d}")
        argv = [cli, "-m", ggml, "-t", str(a.threads), "-p", "1", "-ng",
                "-l", r["lang_arg"] or "auto", "-bs", str(beam), "-bo", str(best_of),
                "-otxt", "-of", of, "-f", r["path"]]
        if len(temps) == 1:
            argv.append("-nf")
        if a.task == "translate":
            argv.append("-tr")
        errf = of + ".err"
        with open(errf, "w") as err:
            wall, p, code, cpu = run_child(argv, stdout=subprocess.DEVNULL, stderr=err)
        cpu_s += cpu
        log_text = open(errf, encoding="utf-8", errors="replace").read()
        if code != 0 or not os.path.exists(of + ".txt"):
            raise RuntimeError(f"whisper-cli exited with {code} on {r['file']}: "
                               f"{log_text.strip().splitlines()[-1:]}")
        m_load = re.search(r"load time =\s*([\d.]+) ms", log_text)
        m_lang = re.search(r"auto-detected language: (\w+)", log_text)
        load = float(m_load.group(1)) / 1000 if m_load else 0.0
        loads.append(load)
        peak = max(peak, p)
        total_wall += wall
        text = " ".join(open(of + ".txt", encoding="utf-8").read().split())
        files.append({"file": r["file"], "text": text,
                      "language": m_lang.group(1) if m_lang else r["lang_arg"],
                      "audio_s": None, "wall_s": max(wall - load, 0.0)})
        print(f"suite:   {label} [{i + 1}/{len(rows)}] {os.path.basename(r['path'])} "
              f"{wall - load:.2f} s", file=sys.stderr, flush=True)
    load_s = sum(loads) / len(loads) if loads else 0.0
    return {"files": files, "wall_s": load_s + sum(f["wall_s"] for f in files),
            "peak_mib": peak, "load_s": load_s, "process_wall_s": total_wall, "cpu_s": cpu_s}


# --------------------------------------------------------------------------- models

def model_path(a, model):
    if os.path.isdir(model):
        return os.path.abspath(model)
    out = subprocess.check_output([os.path.join(a.root, "scripts", "get-model"), model], text=True)
    return out.strip().splitlines()[-1]


def cache_dir(a):
    d = os.environ.get("TOLK_BENCH_CACHE", os.path.expanduser("~/.cache/tolk/bench"))
    os.makedirs(d, exist_ok=True)
    return d


def model_name(model):
    return os.path.basename(os.path.normpath(model))


def convert_module(a):
    path = os.path.join(a.root, "scripts", "convert-model")
    loader = importlib.machinery.SourceFileLoader("tolk_convert_model", path)
    spec = importlib.util.spec_from_loader("tolk_convert_model", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def openai_checkpoint(a, model):
    """openai-whisper's checkpoint format ({"dims", "model_state_dict"}) of the CT2 weights, made
    once with convert-model's reader (the same values, float32 on the CPU) and cached."""
    out = os.path.join(cache_dir(a), f"{model_name(model)}.openai.pt")
    if os.path.exists(out):
        return out
    import numpy as np
    import torch
    log(f"converting {model} to an openai-whisper checkpoint ({out})")
    sd, hp = convert_module(a).canonical(model_path(a, model))
    dims = {k: int(hp[k]) for k in ("n_mels", "n_vocab", "n_audio_ctx", "n_audio_state",
                                     "n_audio_head", "n_audio_layer", "n_text_ctx",
                                     "n_text_state", "n_text_head", "n_text_layer")}
    state = {k: torch.from_numpy(np.ascontiguousarray(v).astype(np.float16)) for k, v in sd.items()}
    tmp = out + ".tmp"
    torch.save({"dims": dims, "model_state_dict": state}, tmp)
    os.replace(tmp, out)
    return out


def ggml_model(a, model):
    """A float16 ggml file of the CT2 weights (scripts/convert-model --ggml), cached."""
    out = os.path.join(cache_dir(a), f"{model_name(model)}.ggml-f16.bin")
    if not os.path.exists(out):
        log(f"converting {model} to ggml f16 ({out})")
        subprocess.check_call([sys.executable, os.path.join(a.root, "scripts", "convert-model"),
                               model_path(a, model), "--ggml", out], stdout=subprocess.DEVNULL)
    return out


# --------------------------------------------------------------------------- environment

def machine_info(a):
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1048576, 1)
    except OSError:
        pass
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem,
            "os": platform.platform(), "python": platform.python_version(), "threads": a.threads}
    versions = {}
    from importlib import metadata
    for dist in ("faster-whisper", "ctranslate2", "openai-whisper", "torch", "jiwer", "sacrebleu",
                 "whisper-normalizer"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # a missing peer is reported per engine
            versions[dist] = None
    try:
        versions["tolk"] = subprocess.check_output([tolk_bin(a), "version"], text=True).split()[-1]
        versions["tolk_commit"] = subprocess.check_output(
            ["git", "-C", a.root, "rev-parse", "--short", "HEAD"], text=True,
            stderr=subprocess.DEVNULL).strip()
        if subprocess.check_output(["git", "-C", a.root, "status", "--porcelain", "--", "src",
                                    "include"], text=True, stderr=subprocess.DEVNULL).strip():
            versions["tolk_commit"] += " + uncommitted changes"
    except Exception:
        pass
    if a.whisper_cpp:
        try:
            versions["whisper.cpp"] = subprocess.check_output(
                ["git", "-C", a.whisper_cpp, "rev-parse", "--short", "HEAD"], text=True,
                stderr=subprocess.DEVNULL).strip()
        except Exception:
            versions["whisper.cpp"] = "unknown"
    info["versions"] = versions
    return info


# --------------------------------------------------------------------------- report

def fmt(v, nd=2):
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return f"{v:.{nd}f}"


def write_report(out, results, info, a):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"machine": info, "published": [dict(zip(
            ("set", "language", "model", "metric", "value", "source"), p)) for p in PUBLISHED],
            "runs": results}, f, indent=1, ensure_ascii=False)
    keys = ["set", "model", "decoding", "engine", "precision", "status", "files", "wer", "cer",
            "bleu", "chrf", "audio_s", "decode_s", "wall_s", "load_s", "cpu_s", "rtfx", "peak_mib",
            "time_vs_tolk", "same_text_as_tolk", "same_text_t0", "load_before", "load_after"]
    with open(os.path.join(out, "results.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in results:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    with open(os.path.join(out, "per_file.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["set", "model", "decoding", "engine", "file", "language", "detected",
                    "audio_s", "wall_s", "max_temperature", "reference", "hypothesis"])
        for r in results:
            for x in r.get("per_file", []):
                w.writerow([r["set"], r["model"], r["decoding"], r["engine"], x["file"],
                            x["language_ref"], x.get("language"), fmt(x.get("audio_s"), 3),
                            fmt(x.get("wall_s"), 3), fmt(x.get("max_temperature"), 1),
                            x["reference"], x["text"]])

    md = [f"# tolk benchmark — {info['date']}", ""]
    md += [f"Machine: {info['cpu']}, {info['cores']} cores, {info['mem_gib']} GiB, {info['os']}. "
           f"Threads per engine: {a.threads}. Language: "
           f"{'given from the manifest' if a.language_given else 'detected by each engine'}.", ""]
    if a.per_language or a.limit:
        md += ["Files: " + (f"the first {a.per_language} files of each language of each manifest"
                            if a.per_language else f"the first {a.limit} files of each manifest")
               + " (a sample of the shared sets, not all of them).", ""]
    for note in info.get("notes", []):
        md += [f"Note: {note}", ""]
    v = info.get("versions", {})
    md += ["Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".", ""]
    loads = [r.get("load_before") for r in results if r.get("load_before") is not None]
    if loads:
        md += [f"System load (1-minute load average) at the start of each engine run: "
               f"{min(loads):.1f} to {max(loads):.1f} on {info['cores']} cores. "
               + ("**The machine was busy with other jobs during this run: speeds and ratios are "
                  "indicative only.**" if max(loads) > (info['cores'] or 1) + 1.0
                  else "The machine was otherwise idle (a load of up to the number of cores is "
                       "the previous engine's own threads, still in the 1-minute average)."), ""]
    md += ["Columns: WER/CER % (corpus-level, Whisper normalisers + jiwer) or BLEU/chrF (sacrebleu); "
           "RTFx = audio seconds / decode seconds (sum of per-file times, model load excluded); "
           "total s = the engine's process wall time, model load included; CPU s = its user + "
           "system CPU seconds (less sensitive to other jobs than wall time); peak MiB = the largest "
           "resident set of the engine's process; time / tolk = this engine's decode seconds / "
           "tolk's (above 1: slower than tolk); same text = files whose normalised hypothesis equals "
           "tolk's; same text at T=0 = files whose raw hypothesis is identical to tolk's, counted over the "
           "files that neither engine decoded by sampling (temperature fallback, which depends on "
           "each engine's random numbers; – where the engine does not report temperatures); "
           "load = the 1-minute load average when the engine started (the machine has "
           f"{info['cores']} cores: above that, other jobs were competing for them).", ""]
    spent = {}
    for r in results:
        k = (r["model"], r["decoding"])
        spent[k] = spent.get(k, 0.0) + (r.get("run_s") or 0.0)
    if spent:
        md += ["Suite time (every engine on every set, model loads and conversions included): " +
               "; ".join(f"{m} {d} {v / 60:.1f} min" for (m, d), v in spent.items()) + ".", ""]
    groups = {}
    for r in results:
        groups.setdefault((r["set"], r["model"], r["decoding"]), []).append(r)
    for (set_, model, dec), rs in groups.items():
        tr = set_.startswith("translate")
        n = max((r.get("files") or 0) for r in rs)
        audio = max((r.get("audio_s") or 0) for r in rs)
        md += [f"## {set_} — {model}, {dec} ({n} files, {audio:.0f} s of audio)", ""]
        metric = ["BLEU", "chrF"] if tr else ["WER %"] + (["CER %"] if any(r.get("cer") is not None
                                                                           for r in rs) else [])
        md.append("| engine | precision | " + " | ".join(metric) +
                  " | RTFx | decode s | total s | CPU s | peak MiB | time / tolk | same text as "
                  "tolk | same text at T=0 | load |")
        md.append("|---|---|" + "---:|" * len(metric) + "---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rs:
            if r["status"] != "ok":
                md.append(f"| {r['engine']} | {r['precision']} | skipped: {r['status']} |")
                continue
            vals = [r.get("bleu"), r.get("chrf")] if tr else [r.get("wer")] + (
                [r.get("cer")] if len(metric) > 1 else [])
            md.append(f"| {r['engine']} | {r['precision']} | " + " | ".join(fmt(x) for x in vals) +
                      f" | {fmt(r['rtfx'], 1)} | {fmt(r['decode_s'], 1)} | {fmt(r['wall_s'], 1)} | "
                      f"{fmt(r.get('cpu_s'), 1)} | "
                      f"{fmt(r['peak_mib'], 0)} | {fmt(r.get('time_vs_tolk'))} | "
                      f"{r.get('same_text_as_tolk', '–')} | {r.get('same_text_t0', '–')} | "
                      f"{fmt(r.get('load_before'), 1)} |")
        md.append("")
        if not tr:
            langs = sorted({l for r in rs if r["status"] == "ok" for l in r.get("per_language", {})})
            if len(langs) > 1:
                md.append("Per language (WER %, CER % where marked): ")
                md.append("")
                md.append("| engine | " + " | ".join(langs) + " |")
                md.append("|---|" + "---:|" * len(langs))
                for r in rs:
                    if r["status"] != "ok":
                        continue
                    cells = []
                    for l in langs:
                        p = r["per_language"].get(l, {})
                        val = p.get("wer", p.get("cer"))
                        cells.append(fmt(val) + (" (CER)" if "cer" in p else ""))
                    md.append(f"| {r['engine']} | " + " | ".join(cells) + " |")
                md.append("")
        tolk = [r for r in rs if r["engine"] == "tolk" and r["status"] == "ok" and r.get("stages")]
        if tolk and tolk[0]["stages"]:
            s = tolk[0]["stages"]
            md += ["tolk per stage (seconds, all files): " + ", ".join(
                f"{k[:-2]} {fmt(val)}" for k, val in s.items()) +
                   ("" if any(s.values()) else " (stage timers not wired into this build yet)"), ""]
    md += ["## Published reference figures (not run here)", "",
           "Published by others for the full public test sets with the large models; shown for "
           "scale only: the sets above are small samples of some of these sets, run with much "
           "smaller models.", "",
           "| test set | language | model | metric | value | source |", "|---|---|---|---|---:|---|"]
    for s, lang, m, k, val, src in PUBLISHED:
        md.append(f"| {s} | {lang} | {m} (published) | {k} | {val} | {src} |")
    md += ["", "Plots: wer_vs_speed.png, per_language.png, per_file_time.png.", ""]
    open(os.path.join(out, "report.md"), "w", encoding="utf-8").write("\n".join(md) + "\n")
    try:
        plot(out, results)
    except Exception as e:  # plots are a convenience: never lose the report over them
        log(f"plots skipped: {e}")


def plot(out, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in results if r["status"] == "ok"]
    asr = [r for r in ok if r.get("wer") is not None]
    markers = {"tolk": "o", "fw-f32": "s", "fw-int8": "D", "openai": "^", "whisper.cpp": "v"}
    if asr:
        fig, ax = plt.subplots(figsize=(7.5, 5))
        for r in asr:
            ax.scatter(r["rtfx"], r["wer"], marker=markers.get(r["engine"], "o"), s=50,
                       label=f"{r['engine']} · {r['set']} {r['model']} {r['decoding']}")
        ax.set_xlabel("speed: RTFx (audio seconds per decode second)")
        ax.set_ylabel("WER %")
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="best")
        ax.set_title("WER vs speed")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "wer_vs_speed.png"), dpi=120)
        plt.close(fig)
    # per-language bars: one panel per (set, model, decoding)
    keys = sorted({(r["set"], r["model"], r["decoding"]) for r in asr})
    if keys:
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3.2 * len(keys)), squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            rs = [r for r in asr if (r["set"], r["model"], r["decoding"]) == key]
            langs = sorted({l for r in rs for l in r["per_language"]})
            width = 0.8 / max(len(rs), 1)
            for i, r in enumerate(rs):
                vals = [r["per_language"].get(l, {}).get("wer",
                        r["per_language"].get(l, {}).get("cer", 0)) for l in langs]
                ax.bar([j + i * width for j in range(len(langs))], vals, width, label=r["engine"])
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))])
            ax.set_xticklabels(langs)
            ax.set_ylabel("WER %")
            ax.set_title(" ".join(key), fontsize=9)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "per_language.png"), dpi=120)
        plt.close(fig)
    # per-file decode time against audio length
    if ok:
        keys = sorted({(r["set"], r["model"], r["decoding"]) for r in ok})
        fig, axes = plt.subplots(len(keys), 1, figsize=(7.5, 3.5 * len(keys)), squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            for r in (r for r in ok if (r["set"], r["model"], r["decoding"]) == key):
                xs = [x["audio_s"] for x in r["per_file"] if x.get("audio_s") and x.get("wall_s")]
                ys = [x["wall_s"] for x in r["per_file"] if x.get("audio_s") and x.get("wall_s")]
                ax.scatter(xs, ys, s=10, marker=markers.get(r["engine"], "o"), label=r["engine"])
            ax.set_xlabel("audio seconds")
            ax.set_ylabel("decode seconds")
            ax.set_title(" ".join(key), fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "per_file_time.png"), dpi=120)
        plt.close(fig)


# --------------------------------------------------------------------------- main

def child_main():
    p = argparse.ArgumentParser()
    for opt in ("--model-dir", "--checkpoint", "--files", "--result", "--task", "--label"):
        p.add_argument(opt)
    p.add_argument("--compute", default="float32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--fallback", type=int, default=None)
    kind = sys.argv[2]
    a = p.parse_args(sys.argv[3:])
    (child_faster_whisper if kind == "fw" else child_openai)(a)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        child_main()
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", required=True, help="the tolk checkout")
    p.add_argument("--tolk", default=os.environ.get("TOLK_BIN"),
                   help="the tolk program [ROOT/build/tolk]")
    p.add_argument("--manifest", action="append",
                   help="a manifest (repeatable) [data/speech/asr.tsv and translate.tsv]")
    p.add_argument("--models", default="base,tiny.en",
                   help="comma-separated names (scripts/get-model) or CT2 directories")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--decoding", default="greedy", help="greedy, fallback, beamN, or several: greedy,beam5")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--whisper-cpp", default=os.environ.get("WHISPER_CPP_DIR"),
                   help="a whisper.cpp checkout with build/bin/whisper-cli built")
    p.add_argument("--detect-language", action="store_true",
                   help="let every engine detect the language instead of passing the manifest's")
    p.add_argument("--limit", type=int, help="only the first N files of each manifest")
    p.add_argument("--per-language", type=int,
                   help="only the first N files of each language of each manifest (a quick, "
                        "balanced sample)")
    p.add_argument("--out", help="report folder [ROOT/bench/results/DATE-HOST]")
    p.add_argument("--rerender", action="store_true",
                   help="only rewrite the report and plots of --out from its results.json")
    a = p.parse_args()
    a.language_given = not a.detect_language
    a.root = os.path.abspath(a.root)
    data = os.environ.get("TOLK_DATA", os.path.join(a.root, "data"))
    manifests = a.manifest or [os.path.join(data, "speech", "asr.tsv"),
                               os.path.join(data, "speech", "translate.tsv")]
    out = a.out or os.path.join(a.root, "bench", "results",
                                f"{datetime.date.today().isoformat()}-{platform.node()}")
    engines = a.engines.split(",")
    for e in engines:
        if e not in ENGINES:
            p.error(f"--engines: unknown engine '{e}' (choose from {', '.join(ENGINES)})")
    decodings = a.decoding.split(",")
    for d in decodings:
        if not re.fullmatch(r"greedy|fallback|beam\d+", d):
            p.error(f"--decoding: '{d}' (greedy, fallback or beamN)")
    if a.rerender:
        if not a.out:
            p.error("--rerender needs --out")
        saved = json.load(open(os.path.join(a.out, "results.json"), encoding="utf-8"))
        write_report(a.out, saved["runs"], saved["machine"], a)
        log(f"report rewritten: {a.out}/report.md")
        return
    info = machine_info(a)
    sets = []
    for man in manifests:
        rows = read_manifest(man, a.limit)
        if a.per_language:
            seen = {}
            rows = [r for r in rows
                    if seen.setdefault(r["language"], 0) < a.per_language
                    and not seen.__setitem__(r["language"], seen[r["language"]] + 1)]
        header = open(man, encoding="utf-8").readline().rstrip("\n").split("\t")
        task = "translate" if "target_language" in header else "transcribe"
        name = os.path.splitext(os.path.basename(man))[0]
        for r in rows:  # audio seconds of every file, the same for every engine
            d = r.get("duration_s")
            r["audio_s"] = float(d) if d else probe_duration(r["path"])
        sets.append((name, task, rows))
    plan = []  # model by model, so that one model's full picture comes first
    for model in a.models.split(","):
        for name, task, rows in sets:
            english_only = model_name(model).endswith(".en")
            rs = rows
            if english_only:
                if task == "translate":
                    continue
                rs = [r for r in rows if r["language"] in ("en", "")]
                if not rs:
                    continue
            for dec in decodings:
                for eng in engines:
                    plan.append((name, task, model, dec, eng, rs))
    log(f"{len(plan)} runs: {len(sets)} sets x {a.models} x {a.decoding} x {len(engines)} engines, "
        f"{a.threads} threads; report in {out}")
    results = []
    work = tempfile.mkdtemp(prefix="tolk-suite-")
    t_start = time.perf_counter()
    try:
        tolk_by_key = {}
        for k, (name, task, model, dec, eng, rows) in enumerate(plan):
            a.task = task
            a.beam, a.fallback = decoding_of(dec)
            english_only = model_name(model).endswith(".en")
            for r in rows:
                r["lang_arg"] = ("en" if english_only else (r["language"] or None)) \
                    if a.language_given else None
            label = f"{name}-{model_name(model)}-{dec}-{eng}"
            rec = {"set": name, "task": task, "model": model_name(model), "decoding": dec,
                   "engine": eng, "precision": PRECISION[eng], "files": len(rows),
                   "threads": a.threads, "load_before": loadavg()}
            elapsed = time.perf_counter() - t_start
            log(f"[{k + 1}/{len(plan)}] {label}: {len(rows)} files "
                f"(elapsed {elapsed / 60:.1f} min, load {rec['load_before']:.1f})")
            t_run = time.perf_counter()
            try:
                run = run_engine(eng, model, rows, a, work, label)
            except Exception as e:
                rec["run_s"] = time.perf_counter() - t_run
                rec["status"] = " ".join(str(e).split())[:200]
                log(f"  skipped: {rec['status']}")
                results.append(rec)
                continue
            rec["load_after"] = loadavg()
            rec["run_s"] = time.perf_counter() - t_run
            by_file = {x["file"]: x for x in run["files"]}
            per_file, hyps = [], []
            for r in rows:
                x = by_file.get(r["file"], {"text": "", "status": "missing"})
                hyps.append(x.get("text") or "")
                per_file.append({"file": r["file"], "language_ref": r["language"],
                                 "reference": r["reference"], "text": x.get("text") or "",
                                 "language": x.get("language"), "audio_s": x.get("audio_s"),
                                 "wall_s": x.get("wall_s"), "stages": x.get("stages"),
                                 "status": x.get("status", "ok"), "error": x.get("error"),
                                 "max_temperature": x.get("max_temperature")})
            # audio seconds: the manifest's duration_s or the probed length, else the engine's
            for pf, r in zip(per_file, rows):
                if r.get("audio_s"):
                    pf["audio_s"] = r["audio_s"]
            audio = sum(pf["audio_s"] or 0 for pf in per_file)
            decode = sum(pf["wall_s"] or 0 for pf in per_file)
            if task == "translate":
                rec.update(score_translation([r["reference"] for r in rows], hyps))
            else:
                sc = score_asr([r["reference"] for r in rows], hyps, [r["language"] for r in rows])
                rec.update({k2: v for k2, v in sc.items()})
            rec.update(status="ok", audio_s=audio, decode_s=decode, wall_s=run["wall_s"],
                       load_s=run.get("load_s"), peak_mib=run["peak_mib"],
                       cpu_s=run.get("cpu_s"),
                       rtfx=audio / decode if decode else float("nan"),
                       stages=run.get("stages"), per_file=per_file)
            key = (name, model, dec)
            if eng == "tolk":
                tolk_by_key[key] = rec
            t = tolk_by_key.get(key)
            if t:
                rec["time_vs_tolk"] = decode / t["decode_s"] if t["decode_s"] else float("nan")
                same = sum(normalize(x["text"], x["language_ref"]) ==
                           normalize(y["text"], y["language_ref"])
                           for x, y in zip(per_file, t["per_file"]))
                rec["same_text_as_tolk"] = f"{same}/{len(rows)}"
                # exact text on the files that both engines decoded deterministically (no
                # fallback to sampling: samples at temperature > 0 depend on each engine's RNG)
                both = [(x, y) for x, y in zip(per_file, t["per_file"])
                        if x.get("max_temperature") == 0 and y.get("max_temperature") == 0]
                if eng != "tolk" and any(x.get("max_temperature") is not None for x in per_file):
                    rec["same_text_t0"] = (f"{sum(x['text'] == y['text'] for x, y in both)}"
                                           f"/{len(both)}")
            score = (f"BLEU {rec['bleu']:.2f}" if task == "translate"
                     else f"WER {rec.get('wer', float('nan')):.2f}%")
            log(f"  {score}, decode {decode:.1f} s (RTFx {rec['rtfx']:.2f}), total "
                f"{run['wall_s']:.1f} s, peak {run['peak_mib']:.0f} MiB")
            results.append(rec)
            write_report(out, results, info, a)  # keep a report of what is done so far
        write_report(out, results, info, a)
        log(f"done in {(time.perf_counter() - t_start) / 60:.1f} min; report: {out}/report.md")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
