#!/usr/bin/env bash
# Installs the storage emulators the tests start (pinned in scripts/emulators-requirements.txt)
# into a project-local virtualenv, .tools/emulators. Idempotent: a second run with the same pins
# does nothing. Needs python3 with venv and PyPI.
set -euo pipefail
usage="usage: npm run setup:emulators
Installs the storage emulators the tests start (pinned in scripts/emulators-requirements.txt)
into .tools/emulators; does nothing when they are up to date."
case "${1-}" in
  "") ;;
  -h|--help) echo "$usage"; exit 0 ;;
  *) printf 'Unexpected argument %s\n\n%s\n' "$1" "$usage" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
venv=.tools/emulators
req=scripts/emulators-requirements.txt
stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
if [[ -f "$stamp" ]]; then
  echo "[setup:emulators] up to date in $venv"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
rm -f "$venv"/.installed-*
touch "$stamp"
echo "[setup:emulators] installed into $venv: $(grep -v '^#' "$req" | xargs)"
