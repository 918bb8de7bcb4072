#!/usr/bin/env bash
# Pendulum table and figures: ppo_continuous.py on Pendulum-v1, 1M steps, seeds 1 2 3, the script's defaults
# otherwise. (No published number in published.csv: CleanRL and Baselines report no Pendulum PPO result.)
#
#   bash benchmark/recipes/pendulum.sh                         # local
#   bash benchmark/recipes/pendulum.sh --backend slurm --wait  # Slurm
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_continuous.py --env-ids Pendulum-v1 --seeds 1 2 3 \
    --out benchmark/runs/pendulum "$@" -- --total-timesteps 1000000 || status=$?
python -m benchmark.report --runs benchmark/runs/pendulum --out benchmark/results/pendulum
exit "$status"
