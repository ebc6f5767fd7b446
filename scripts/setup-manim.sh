#!/usr/bin/env bash
# Installs Manim Community (pinned in scripts/manim-requirements.txt) into a project-local
# virtualenv, .tools/manim, where the render worker finds it. Idempotent: a second run with the
# same pins does nothing. Needs the Debian packages of scripts/manim-debian-packages.txt (it stops
# and names the missing ones) and PyPI.
set -euo pipefail
usage="usage: npm run setup:manim
Installs Manim Community (pinned in scripts/manim-requirements.txt) into .tools/manim; does
nothing when it is up to date. Needs the Debian packages of scripts/manim-debian-packages.txt.
MANIM_SETUP_PYTHON picks the Python (default python3)."
case "${1-}" in
  "") ;;
  -h|--help) echo "$usage"; exit 0 ;;
  *) printf 'Unexpected argument %s\n\n%s\n' "$1" "$usage" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
venv=.tools/manim
req=scripts/manim-requirements.txt
python=${MANIM_SETUP_PYTHON:-python3}

# Each check and the Debian package that satisfies it.
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if command -v pkg-config >/dev/null 2>&1; then
  pkg-config --exists cairo || missing+=(libcairo2-dev)
  pkg-config --exists pangocairo || missing+=(libpango1.0-dev)
fi
include=$("$python" -c 'import sysconfig; print(sysconfig.get_path("include"))' 2>/dev/null || true)
[[ -n "$include" && -f "$include/Python.h" ]] || missing+=(python3-dev)
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v latex >/dev/null 2>&1 || missing+=(texlive-latex-base)
command -v kpsewhich >/dev/null 2>&1 && kpsewhich standalone.cls >/dev/null 2>&1 || missing+=(texlive-latex-extra)
command -v dvisvgm >/dev/null 2>&1 || missing+=(dvisvgm)
ldconfig -p 2>/dev/null | grep -q 'libEGL\.so\.1 ' || missing+=(libegl1)
ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa\.so\.0 ' || missing+=(libegl-mesa0)
compgen -G "/usr/lib/*/dri/swrast_dri.so" >/dev/null || missing+=(libgl1-mesa-dri)
if ((${#missing[@]})); then
  echo "[setup:manim] missing Debian packages: ${missing[*]}" >&2
  echo "[setup:manim] install them with: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  echo "[setup:manim] (the full list is scripts/manim-debian-packages.txt)" >&2
  exit 1
fi

stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
if [[ -f "$stamp" ]]; then
  echo "[setup:manim] up to date in $venv"
  exit 0
fi
started=$SECONDS
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
rm -f "$venv"/.installed-*
touch "$stamp"
echo "[setup:manim] installed $(grep -m1 '^manim==' "$req") into $venv in $((SECONDS - started)) s"
