#!/usr/bin/env bash
# CI on a clean clone: install what the machine lacks, then run the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

# ffmpeg (encoding), bubblewrap (the Manim/scene sandbox), espeak-ng (quiz narration), chromium (the
# console's browser tests), and what
# Manim needs (scripts/manim-debian-packages.txt: compilers and headers, LaTeX, EGL); the Manim
# virtualenv itself comes with `npm test` (pretest: setup:manim).
need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# The console's end-to-end tests drive Debian's Chromium (playwright-core cannot download browsers here).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Without recommends: texlive-latex-extra's include a Java runtime (default-jre).
need_manim=()
for pkg in $(grep -v '^#' scripts/manim-debian-packages.txt); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_manim+=("$pkg")
done
if ((${#need[@]} + ${#need_manim[@]})); then
  echo "[ci] installing from Debian: ${need[*]} ${need_manim[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ((${#need[@]})); then apt-get install -y -qq -o DPkg::Lock::Timeout=900 "${need[@]}" >/dev/null; fi
  if ((${#need_manim[@]})); then
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "${need_manim[@]}" >/dev/null
  fi
fi
ffmpeg -hide_banner -version | head -1
