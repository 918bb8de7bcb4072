#!/usr/bin/env bash
# Classic control table and figures: ppo_discrete.py on CartPole-v1 and Acrobot-v1, 500k steps, seeds 1 2 3,
# the script's defaults otherwise (CleanRL's ppo.py settings, whose published numbers are in published.csv).
#
#   bash benchmark/recipes/classic_control.sh                         # local, one run per core
#   bash benchmark/recipes/classic_control.sh --backend slurm --wait  # one Slurm array job (add --partition ...)
#
# Arguments are passed to benchmark.sweep. Run it again to finish an interrupted or partly failed sweep.
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_discrete.py --env-ids CartPole-v1 Acrobot-v1 --seeds 1 2 3 \
    --out benchmark/runs/classic_control "$@" -- --total-timesteps 500000 || status=$?
python -m benchmark.report --runs benchmark/runs/classic_control --out benchmark/results/classic_control
exit "$status"
