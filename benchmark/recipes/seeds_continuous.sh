#!/usr/bin/env bash
# The seeds variant's results beside the single-seed tables: ppo_continuous_seeds.py, 8 seeds per env trained in one
# process (benchmark.sweep --batch-seeds), on Pendulum-v1 HalfCheetah-v5 Hopper-v5 Walker2d-v5, 1000000 steps, the script's defaults
# otherwise (the parent's recipe), two processes side by side with 1 torch thread each.
#
#   bash benchmark/recipes/seeds_continuous.sh                         # local
#   bash benchmark/recipes/seeds_continuous.sh --backend slurm --wait  # Slurm
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_continuous.py --batch-seeds --env-ids Pendulum-v1 HalfCheetah-v5 Hopper-v5 Walker2d-v5 --seeds 1 2 3 4 5 6 7 8 \
    --out benchmark/runs/seeds_continuous "$@" -- --total-timesteps 1000000 || status=$?
python -m benchmark.report --runs benchmark/runs/seeds_continuous --out benchmark/results/seeds_continuous
exit "$status"
