#!/usr/bin/env bash
# The seeds variant's results beside the single-seed tables: ppo_discrete_seeds.py, 8 seeds per env trained in one
# process (benchmark.sweep --batch-seeds), on CartPole-v1 Acrobot-v1, 500000 steps, the script's defaults
# otherwise (the parent's recipe), two processes side by side with 1 torch thread each.
#
#   bash benchmark/recipes/seeds_discrete.sh                         # local
#   bash benchmark/recipes/seeds_discrete.sh --backend slurm --wait  # Slurm
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_discrete.py --batch-seeds --env-ids CartPole-v1 Acrobot-v1 --seeds 1 2 3 4 5 6 7 8 \
    --out benchmark/runs/seeds_discrete "$@" -- --total-timesteps 500000 || status=$?
python -m benchmark.report --runs benchmark/runs/seeds_discrete --out benchmark/results/seeds_discrete
exit "$status"
