#!/usr/bin/env bash
# Stop the daemons that start_local_slurm.sh started (their PIDs are in $STATE_DIR/pids/), nothing else.
#
#   bash benchmark/slurm/stop_local_slurm.sh [STATE_DIR]
set -euo pipefail

STATE_DIR="${1:-${BENCHMARK_SLURM_DIR:-/tmp/benchmark-slurm}}"
PIDS="$STATE_DIR/pids"
for daemon in slurmd slurmctld munged; do
    pid_file="$PIDS/$daemon"
    [ -s "$pid_file" ] || continue
    pid="$(cat "$pid_file")"
    # The PID must still belong to that daemon, not to a process that reused the number.
    if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$daemon" ]; then
        echo "stop_local_slurm: stopping $daemon ($pid)" >&2
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pid_file"
done
