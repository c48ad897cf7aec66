#!/usr/bin/env bash
# run.sh VENV TEST.py TOLK — run one `tolk serve` test with the tests'
# Python environment (venv.sh); a skip (77) when it could not be made.
set -u
VENV=$1
shift
if [ ! -x "$VENV/bin/python" ]; then
    echo "SKIP: no Python environment at $VENV (tests/serve/venv.sh)"
    [ "${TOLK_REQUIRE_MODELS:-}" = 1 ] && exit 1
    exit 77
fi
exec "$VENV/bin/python" -W ignore::DeprecationWarning "$@"
