#!/usr/bin/env bash
# gpu-models.sh — move installed models to the device machine in pieces
# (it has no network, and one call carries at most 64 MiB).
#   bench/gpu-models.sh pack NAME...   split $TOLK_MODELS/NAME (default cache
#                                      ~/.cache/tolk/models) into
#                                      .gpu-models/NAME.partNN (< 32 MiB each)
#   bench/gpu-models.sh unpack         reassemble every complete set of parts
#                                      in .gpu-models into .gpu-models/NAME
# .gpu-models is added to .git/info/exclude so it never gets committed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$here/.gpu-models"
models="${TOLK_MODELS:-$HOME/.cache/tolk/models}"
mkdir -p "$out"
grep -qx '/.gpu-models/' "$here/.git/info/exclude" 2>/dev/null ||
    echo '/.gpu-models/' >>"$here/.git/info/exclude" 2>/dev/null || true
case "${1:-}" in
pack)
    shift
    for name in "$@"; do
        [ -d "$models/$name" ] || { echo "gpu-models: $models/$name: not installed" >&2; exit 1; }
        rm -f "$out/$name".part*
        tar -C "$models" -cf - "$name" | split -b 31M -d -a 2 - "$out/$name.part"
        n=$(ls "$out/$name".part* | wc -l)
        echo "$n" >"$out/$name.nparts"
        echo "$name: $n parts in $out"
    done
    ;;
unpack)
    for f in "$out"/*.nparts; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .nparts)
        want=$(cat "$f")
        have=$(ls "$out/$name".part* 2>/dev/null | wc -l)
        if [ "$have" -ne "$want" ]; then
            echo "$name: $have of $want parts here, not unpacked"
            continue
        fi
        cat "$out/$name".part* | tar -C "$out" -xf -
        echo "$name: unpacked into $out/$name"
    done
    ;;
*)
    echo "usage: $0 pack NAME... | unpack" >&2
    exit 2
    ;;
esac
