#!/usr/bin/env python3
"""ab_bench.py — compare two `tolk bench` runs of the same manifest (JSON
lines, one per file, then a summary): how many hypotheses differ, the wall
seconds of each, and a rough word error rate of each against the manifest's
references (lowercased words, punctuation stripped, numbers as written).

For A/B checks on a machine without the scoring packages (the lent GPU
machine reaches no network): bench/gpu-check.sh runs the float16 model with
the exact and the tanh GELU (tolk_model_params.gelu) and prints this. The
project's real scores come from bench/suite (jiwer + whisper-normalizer);
this rough rate only says whether A and B differ in accuracy.

Usage: bench/ab_bench.py A.jsonl B.jsonl [--label-a NAME] [--label-b NAME]
Exit status 0, or 2 on bad input (missing file, not tolk bench output).
"""
import json
import re
import sys


def fail(msg):
    print(f"ab_bench: {msg}", file=sys.stderr)
    sys.exit(2)


def load(path):
    """{(file, rep): record} of a tolk bench JSON-lines file, and its total wall seconds."""
    rows, wall = {}, 0.0
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    fail(f"{path}:{n}: not JSON ({e})")
                if rec.get("type") == "file":
                    rows[(rec.get("file"), rec.get("rep", 0))] = rec
                    if isinstance(rec.get("wall_s"), (int, float)):
                        wall += rec["wall_s"]
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if not rows:
        fail(f"{path}: no file records (is it tolk bench output?)")
    return rows, wall


def words(text):
    return re.sub(r"[^\w\s']", " ", (text or "").lower()).split()


def edits(ref, hyp):
    """Word-level Levenshtein distance."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def rough_wer(rows):
    err = n = 0
    for rec in rows.values():
        ref = words(rec.get("reference"))
        if not ref:
            continue
        err += edits(ref, words(rec.get("hypothesis")))
        n += len(ref)
    return 100.0 * err / n if n else float("nan")


def main(argv):
    args, labels = [], ["A", "B"]
    i = 0
    while i < len(argv):
        if argv[i] in ("--label-a", "--label-b") and i + 1 < len(argv):
            labels[0 if argv[i] == "--label-a" else 1] = argv[i + 1]
            i += 2
            continue
        args.append(argv[i])
        i += 1
    if len(args) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    (a, wa), (b, wb) = load(args[0]), load(args[1])
    common = sorted(set(a) & set(b), key=str)
    differ = [k for k in common if a[k].get("hypothesis") != b[k].get("hypothesis")]
    print(f"files in both: {len(common)} (only {labels[0]}: {len(set(a) - set(b))}, "
          f"only {labels[1]}: {len(set(b) - set(a))})")
    print(f"hypotheses that differ: {len(differ)}")
    for k in differ[:5]:
        print(f"  {k[0]}:\n    {labels[0]}: {a[k].get('hypothesis')}\n"
              f"    {labels[1]}: {b[k].get('hypothesis')}")
    print(f"rough WER %: {labels[0]} {rough_wer(a):.2f}, {labels[1]} {rough_wer(b):.2f}")
    print(f"wall s (sum over files): {labels[0]} {wa:.2f}, {labels[1]} {wb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
