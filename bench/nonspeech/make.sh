#!/usr/bin/env bash
# bench/nonspeech/make.sh — (re)make the non-speech clips of bench/vad.sh: 10 s, 16 kHz mono
# 16-bit FLAC, generated with sox in repeatable mode (-R: the same bytes every run), plus real
# sound effects from Debian's sound-theme-freedesktop (CC-BY-3.0, CC-BY-SA-3.0, GPL-2+; see
# manifest.tsv), each repeated with pauses to 10 s. The clips are committed; this records how.
#
#   bench/nonspeech/make.sh [DEB]   DEB: sound-theme-freedesktop_*.deb (default: apt-get download)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
S=(sox -R -D -q)
F=(-r 16000 -c 1 -b 16)
gen() { local name=$1; shift; "${S[@]}" -n "${F[@]}" "$name.flac" "$@"; }
gen silence trim 0 10
gen noise-floor synth 10 whitenoise vol 0.001
gen white-noise synth 10 whitenoise vol 0.05
gen pink-noise synth 10 pinknoise vol 0.1
gen brown-noise synth 10 brownnoise vol 0.2
gen hum-50hz synth 10 sine 50 vol 0.3
gen buzz-60hz synth 10 square 60 vol 0.05 lowpass 2000
gen tone-440hz synth 10 sine 440 vol 0.2
gen sweep synth 10 sine 100-6000 vol 0.2
gen beeps synth 0.25 sine 1000 vol 0.2 pad 0 0.75 repeat 9
gen clicks synth 0.003 square 1500 vol 0.5 pad 0 0.247 repeat 39
gen chord synth 10 sine 261.63 sine 329.63 sine 392 remix - tremolo 4 60 vol 0.3
# real sound effects (no speech)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
deb=${1:-}
if [ -z "$deb" ]; then
    (cd "$tmp" && apt-get download sound-theme-freedesktop >/dev/null)
    deb=$(ls "$tmp"/sound-theme-freedesktop_*.deb)
fi
dpkg -x "$deb" "$tmp/x"
snd=$tmp/x/usr/share/sounds/freedesktop/stereo
for s in bell complete trash-empty camera-shutter alarm-clock-elapsed phone-incoming-call \
    phone-outgoing-busy; do
    "${S[@]}" "$snd/$s.oga" "${F[@]}" "$tmp/one.wav" pad 0 0.5
    "${S[@]}" "$tmp/one.wav" "${F[@]}" "sfx-$s.flac" repeat 20 trim 0 10
done
ls -l ./*.flac
