#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (munged, slurmctld, slurmd) for tests and CI; no systemd needed.
#
#   eval "$(bash benchmark/slurm/start_local_slurm.sh)"   # starts it and exports SLURM_CONF in this shell
#   bash benchmark/slurm/stop_local_slurm.sh              # stops only the daemons this script started
#
# Needs root and the Debian packages slurmctld slurmd slurm-client munge. Idempotent: when the cluster
# described by $STATE_DIR/slurm.conf already answers, nothing is started. Progress goes to stderr; the only
# line on stdout is `export SLURM_CONF=...`. The state directory is the first argument, or
# $BENCHMARK_SLURM_DIR, or /tmp/benchmark-slurm; the PIDs of the daemons started here are kept in
# $STATE_DIR/pids/ so that the stop script ends those and nothing else.
set -euo pipefail

STATE_DIR="${1:-${BENCHMARK_SLURM_DIR:-/tmp/benchmark-slurm}}"
STATE_DIR="$(mkdir -p "$STATE_DIR" && cd "$STATE_DIR" && pwd)"
CONF="$STATE_DIR/slurm.conf"
PIDS="$STATE_DIR/pids"
TIMEOUT_S="${BENCHMARK_SLURM_START_TIMEOUT:-60}"
export SLURM_CONF="$CONF"

log() { echo "start_local_slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd runs jobs as their submitter and needs root)"
for tool in munged munge unmunge slurmctld slurmd sinfo scontrol; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install -y slurmctld slurmd slurm-client munge"
done
mkdir -p "$PIDS" "$STATE_DIR/log" "$STATE_DIR/ctld" "$STATE_DIR/d"

# A daemon counts as ours when its PID file under $PIDS names a live process.
alive() { [ -s "$PIDS/$1" ] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null; }

node_state() { sinfo --noheader --nodes=localhost --format=%T 2>/dev/null | head -n 1 | tr -d '*~#'; }

# ---- munge: a key, /run/munge owned by munge, munged running as munge ----
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    log "starting munged"
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$PIDS/munged"
    munge -n </dev/null | unmunge >/dev/null || die "munged started but a credential does not round-trip"
else
    log "munge already works; not starting munged"
fi

# ---- slurm.conf: one node with the hardware slurmd detects, one partition, no accounting ----
# `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105";
# the node's CPUs and topology must match it or slurmd registers as invalid. RealMemory is left out (1 MB):
# memory is not a consumable resource here, and a configured value above the detected one drains the node.
HARDWARE="$(slurmd -C | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')"
[ -n "$HARDWARE" ] || die "slurmd -C printed no hardware description"
NEW_CONF="$(cat <<CONF
# Written by benchmark/slurm/start_local_slurm.sh
ClusterName=benchmark
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=600
NodeName=localhost ${HARDWARE}State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
)"
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEW_CONF" ]; then
    if alive slurmctld || alive slurmd; then
        die "$CONF would change while its daemons run; run stop_local_slurm.sh first"
    fi
    printf '%s\n' "$NEW_CONF" >"$CONF"
    log "wrote $CONF"
fi

# ---- slurmctld and slurmd, unless they already run ----
if ! alive slurmctld; then
    log "starting slurmctld"
    slurmctld -f "$CONF"  # forks; writes SlurmctldPidFile
    for _ in $(seq 100); do [ -s "$STATE_DIR/slurmctld.pid" ] && break; sleep 0.1; done
    [ -s "$STATE_DIR/slurmctld.pid" ] || die "slurmctld wrote no PID file; see $STATE_DIR/log/slurmctld.log"
    cp "$STATE_DIR/slurmctld.pid" "$PIDS/slurmctld"
fi
if ! alive slurmd; then
    log "starting slurmd"
    slurmd -f "$CONF" -N localhost
    for _ in $(seq 100); do [ -s "$STATE_DIR/slurmd.pid" ] && break; sleep 0.1; done
    [ -s "$STATE_DIR/slurmd.pid" ] || die "slurmd wrote no PID file; see $STATE_DIR/log/slurmd.log"
    cp "$STATE_DIR/slurmd.pid" "$PIDS/slurmd"
fi

# ---- wait for the node to be usable ----
deadline=$((SECONDS + TIMEOUT_S))
state=""
while [ $SECONDS -lt $deadline ]; do
    state="$(node_state)"
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down|drained|draining|fail|inval)
            scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) log "node localhost is $state" ;;
    *) die "node localhost is '${state:-unreachable}' after ${TIMEOUT_S}s; see $STATE_DIR/log/" ;;
esac
echo "export SLURM_CONF=$CONF"
