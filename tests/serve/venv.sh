#!/usr/bin/env bash
# venv.sh VENV — the Python environment of the `tolk serve` tests: the
# official openai package with its realtime extra (websockets), from PyPI,
# unchanged. Made once per build directory (CTest fixture serve_venv).
# Without network it reports a skip (77) unless TOLK_REQUIRE_MODELS=1.
set -u
VENV=${1:?usage: venv.sh VENV}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import openai, websockets' 2>/dev/null; then
    "$VENV/bin/python" -c 'import openai; print("openai", openai.__version__)'
    exit 0
fi
rm -rf "$VENV"
if python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check 'openai[realtime]'; then
    "$VENV/bin/python" -c 'import openai; print("openai", openai.__version__)'
    exit 0
fi
rm -rf "$VENV"
echo "venv.sh: cannot install openai[realtime] into $VENV (no network?)" >&2
[ "${TOLK_REQUIRE_MODELS:-}" = 1 ] && exit 1
exit 77
