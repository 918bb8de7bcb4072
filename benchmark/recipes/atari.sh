#!/usr/bin/env bash
# Atari table and figures: ppo_atari.py on Breakout and Pong, 10M agent steps (40M frames), seeds 1 2 3, the
# script's defaults otherwise (2 torch threads per run, the script's own default). Env ids as in CleanRL's
# published table (NoFrameskip-v4, registered by ale-py: no sticky actions).
# Needs a GPU for a reasonable wall time: on Slurm, e.g.
#
#   bash benchmark/recipes/atari.sh --backend slurm --partition gpu --gpus-per-task 1 --cpus-per-task 4 \
#       --time 24:00:00 --wait
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_atari.py --env-ids BreakoutNoFrameskip-v4 PongNoFrameskip-v4 --seeds 1 2 3 \
    --out benchmark/runs/atari --threads-per-run 2 "$@" -- --total-timesteps 10000000 || status=$?
python -m benchmark.report --runs benchmark/runs/atari --out benchmark/results/atari
exit "$status"
