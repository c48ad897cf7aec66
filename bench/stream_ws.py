#!/usr/bin/env python3
"""bench/stream_ws.py — run ufal/whisper_streaming's whisper_online.py (its simultaneous mode: the file
fed at real time, LocalAgreement-2, its defaults) over faster-whisper int8 on the CPU, for bench/stream.

    stream_ws.py WHISPER_ONLINE.PY AUDIO.wav MODEL_DIR THREADS

whisper_online.py loads faster-whisper on CUDA (float16) as shipped; this wrapper makes its
WhisperModel the CPU int8 one with THREADS threads (the setting its comments give for the CPU) and
runs the script unchanged. Its standard output: one line per commit, "now_ms start_ms end_ms text"
(now: milliseconds since the first sample was fed).
"""
import runpy
import sys

import faster_whisper

ws, audio, model, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
_Orig = faster_whisper.WhisperModel


class CpuInt8(_Orig):
    def __init__(self, model_size_or_path, device="auto", compute_type="default", **kw):
        kw.pop("cpu_threads", None)
        super().__init__(model_size_or_path, device="cpu", compute_type="int8", cpu_threads=threads,
                         **kw)


faster_whisper.WhisperModel = CpuInt8
sys.argv = [ws, audio, "--model_dir", model, "--lan", "en", "--backend", "faster-whisper",
            "--min-chunk-size", "1.0", "-l", "WARNING"]
sys.path.insert(0, __import__("os").path.dirname(ws))
runpy.run_path(ws, run_name="__main__")
