#!/usr/bin/env bash
# One ladder encode on many cores: the worker's one ffmpeg process against the same ladder cut into
# time chunks run side by side, each pinned to its own cores with taskset (`npm run bench:cores`).
# Runs where Node may not: the commands come from `npm run bench:ladder-command` (the worker's exact
# ladder command and the bench sources), made beforehand on a machine with the project.
set -uo pipefail
usage() {
  cat <<'USAGE'
usage: npm run bench:cores -- --commands=<file> [--ffmpeg=<program>] [--layouts=<n×c,...>]
Makes the bench sources, then times the ladder of <file> (from npm run bench:ladder-command) on each of
them in every layout that fits the machine's cores: n×c is n parts of the source, each a time chunk
encoded by its own ffmpeg on its own c cores (1×c: the worker's one process on c cores). Prints wall
time, speed against real time, ffmpeg's CPU seconds and the cores kept busy. Chunks are cut with -ss/-t
on the input (the CPU they cost, not the joins: test/worker/chunks.test.ts checks those).
Defaults: ffmpeg on PATH; layouts 1×4,2×2,1×8,2×4,1×16,4×4.
USAGE
}
commands="" ffmpeg_program="ffmpeg" layouts="1x4,2x2,1x8,2x4,1x16,4x4"
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --commands=*) commands="${arg#*=}" ;;
    --ffmpeg=*) ffmpeg_program="${arg#*=}" ;;
    --layouts=*) layouts="${arg#*=}" ;;
    *) echo "unknown option $arg" >&2; echo >&2; usage >&2; exit 2 ;;
  esac
done
[[ -n "$commands" ]] || { echo "--commands is required" >&2; echo >&2; usage >&2; exit 2; }
# shellcheck source=/dev/null
source "$commands"
read -r -a FF <<<"$ffmpeg_program"
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${FF[@]}" -hide_banner -version | head -1
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

# run SOURCE PARTS CORES_PER_PART
run() {
  local src=$1 parts=$2 per=$3 k
  local len; len=$(awk -v s="$SECONDS_OF_SOURCE" -v n="$parts" 'BEGIN { print s / n }')
  local start; start=$(date +%s.%N)
  for ((k = 0; k < parts; k++)); do
    local dir="$work/$src-$parts-$per-$k"
    mkdir -p "$dir" && (cd "$dir" && mkdir -p "${RUNGS[@]}")
    local from; from=$(awk -v l="$len" -v k="$k" 'BEGIN { print l * k }')
    (cd "$dir" && taskset -c "$((k * per))-$((k * per + per - 1))" "${FF[@]}" "${PRE[@]}" -ss "$from" -t "$len" \
      -i "file:$work/$src.mp4" "${POST[@]}" >log 2>&1; echo "exit=$?" >>log) &
  done
  wait
  local end; end=$(date +%s.%N)
  cat "$work/$src-$parts-$per"-*/log | awk -v src="$src" -v n="$parts" -v c="$per" -v t0="$start" -v t1="$end" \
    -v secs="$SECONDS_OF_SOURCE" '
    /bench: utime=/ { for (i = 1; i <= NF; i++) if ($i ~ /^(utime|stime)=/) { split($i, kv, "="); cpu += kv[2] + 0 } }
    /^exit=/ && $0 != "exit=0" { failed = 1 }
    END {
      wall = t1 - t0
      printf "%-9s %2d×%-2d %7.1f s %6.2f× real time %7.1f CPU s %5.1f cores busy%s\n", src, n, c, wall, secs / wall, cpu, cpu / wall, failed ? "  FAILED" : ""
    }'
}
for name in $(compgen -A variable | grep '^SOURCE_' | sed 's/^SOURCE_//'); do
  declare -n source_args="SOURCE_$name"
  args=("${source_args[@]}")
  args[-1]="$work/$name.mp4"
  "${FF[@]}" "${args[@]}" || exit 1
done
printf "%-9s %-5s %9s %18s %12s %16s\n" source n×c wall speed "ffmpeg CPU" busy
for name in $(compgen -A variable | grep '^SOURCE_' | sed 's/^SOURCE_//'); do
  for layout in ${layouts//,/ }; do
    parts=${layout%%[x×]*} per=${layout##*[x×]}
    if ((parts * per > cores)); then echo "$name $layout: needs $((parts * per)) cores, $cores here: skipped"; continue; fi
    run "$name" "$parts" "$per"
  done
done
