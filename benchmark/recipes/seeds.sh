#!/usr/bin/env bash
# The seeds variants' results beside the single-seed tables: 8 seeds per env trained in one process
# (benchmark.sweep --batch-seeds runs ppo_*_seeds.py), the parents' recipes otherwise: ppo_continuous_seeds.py on
# Pendulum-v1, HalfCheetah-v5, Hopper-v5 and Walker2d-v5 for 1M steps, ppo_discrete_seeds.py on CartPole-v1 and
# Acrobot-v1 for 500k steps, the scripts' defaults, two processes side by side with 1 torch thread each.
#
#   bash benchmark/recipes/seeds.sh                         # local
#   bash benchmark/recipes/seeds.sh --backend slurm --wait  # Slurm
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_continuous.py --batch-seeds --seeds 1 2 3 4 5 6 7 8 \
    --env-ids Pendulum-v1 HalfCheetah-v5 Hopper-v5 Walker2d-v5 \
    --out benchmark/runs/seeds_continuous "$@" -- --total-timesteps 1000000 || status=$?
python -m benchmark.sweep --script ppo_discrete.py --batch-seeds --seeds 1 2 3 4 5 6 7 8 \
    --env-ids CartPole-v1 Acrobot-v1 --out benchmark/runs/seeds_discrete "$@" -- --total-timesteps 500000 || status=$?
python -m benchmark.report --runs benchmark/runs/seeds_continuous benchmark/runs/seeds_discrete \
    --out benchmark/results/seeds
exit "$status"
