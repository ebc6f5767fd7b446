#!/usr/bin/env bash
# Builds the SRT ingest's gateway (src/live/srt-gateway.c) into .tools/srt-gateway/srt-gateway with
# the C compiler and Debian's libsrt (libsrt-gnutls-dev: the flavour Debian's ffmpeg links, so the
# runtime library is already there wherever ffmpeg is). Idempotent: rebuilds only when the source
# changed. `--if-possible` (npm install runs it so): prints why and succeeds when the compiler or
# libsrt's headers are missing; the API then runs without SRT ingest (docs/live.md).
set -euo pipefail
usage="usage: npm run setup:srt [-- --if-possible]
Builds the SRT ingest's gateway into .tools/srt-gateway (needs cc and libsrt-gnutls-dev);
--if-possible: succeeds without building when they are missing."
optional=false
case "${1-}" in
  "") ;;
  --if-possible) optional=true ;;
  -h|--help) echo "$usage"; exit 0 ;;
  *) printf 'Unexpected argument %s\n\n%s\n' "$1" "$usage" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
src=src/live/srt-gateway.c
out=.tools/srt-gateway
if ! command -v cc >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists srt gnutls; then
  why="needs a C compiler (cc), pkg-config and the headers of libsrt and GnuTLS (apt-get install gcc pkg-config libsrt-gnutls-dev, which brings libgnutls28-dev)"
  if $optional; then
    echo "[setup:srt] SRT ingest not built: it $why; the API runs with RTMP ingest only"
    exit 0
  fi
  echo "[setup:srt] $why" >&2
  exit 1
fi
stamp="$out/.built-$(cat "$src" "$0" | sha256sum | cut -c1-16)"
if [[ -f "$stamp" && -x "$out/srt-gateway" ]]; then
  echo "[setup:srt] up to date in $out"
  exit 0
fi
mkdir -p "$out"
# shellcheck disable=SC2046 # pkg-config prints flags to split
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
  -o "$out/srt-gateway.tmp" "$src" $(pkg-config --cflags --libs srt gnutls)
mv "$out/srt-gateway.tmp" "$out/srt-gateway"
rm -f "$out"/.built-*
touch "$stamp"
echo "[setup:srt] built $out/srt-gateway ($(pkg-config --modversion srt))"
