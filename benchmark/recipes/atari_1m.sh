#!/usr/bin/env bash
# Atari at the budget a 2-core CPU allows: ppo_atari.py on Breakout and Pong, 1M agent steps (4M frames), seeds 1 2,
# the script's defaults otherwise, two runs side by side with 1 torch thread each (about 180 SPS each on the
# project's 2-core machine: 1.5 hours a run). Env ids as in CleanRL's published table (NoFrameskip-v4: no sticky
# actions). The published numbers beside ours are at 10M steps (benchmark/recipes/atari.sh).
#
#   bash benchmark/recipes/atari_1m.sh                # local
#   bash benchmark/recipes/atari_1m.sh --backend slurm --cpus-per-task 2 --time 4:00:00 --wait
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_atari.py --env-ids BreakoutNoFrameskip-v4 PongNoFrameskip-v4 --seeds 1 2 \
    --out benchmark/runs/atari_1m --threads-per-run 1 "$@" -- --total-timesteps 1000000 || status=$?
python -m benchmark.report --runs benchmark/runs/atari_1m --out benchmark/results/atari_1m
exit "$status"
