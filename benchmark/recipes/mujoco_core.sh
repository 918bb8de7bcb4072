#!/usr/bin/env bash
# The three MuJoCo tasks with targets in the README, 3 seeds: ppo_continuous.py on HalfCheetah-v5, Hopper-v5 and
# Walker2d-v5, 1M steps, seeds 1 2 3, the script's defaults otherwise, two runs side by side with 1 torch thread
# each (9 runs; on the project's 2-core machine about 1.5 hours).
#
#   bash benchmark/recipes/mujoco_core.sh                                               # local
#   bash benchmark/recipes/mujoco_core.sh --backend slurm --time 4:00:00 --max-concurrent 9 --wait
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_continuous.py --env-ids HalfCheetah-v5 Hopper-v5 Walker2d-v5 --seeds 1 2 3 \
    --out benchmark/runs/mujoco_core "$@" -- --total-timesteps 1000000 || status=$?
python -m benchmark.report --runs benchmark/runs/mujoco_core --out benchmark/results/mujoco_core
exit "$status"
