#!/usr/bin/env bash
# Run report-scale chapters one at a time, each on an idle machine: wait for the 1-minute load average to
# fall below LOAD_MAX, hold /tmp/heavy.lock (other CPU-heavy jobs take it too), run the chapter in place.
# Usage: tools/report_chapters.sh CHAPTER [CHAPTER ...]
set -uo pipefail
cd "$(dirname "$0")/.."
LOAD_MAX=${LOAD_MAX:-1.0}
for ch in "$@"; do
  (
    flock 9
    while awk -v max="$LOAD_MAX" '{exit !($1 >= max)}' /proc/loadavg; do sleep 10; done
    echo "$(date -u +%FT%TZ) start $ch (load $(cut -d' ' -f1 /proc/loadavg))"
    .venv/bin/kaiyuan-report --scale report --only "$ch" --in-place || { echo "$(date -u +%FT%TZ) FAILED $ch"; exit 1; }
    echo "$(date -u +%FT%TZ) done $ch"
  ) 9>/tmp/heavy.lock || exit 1
done
