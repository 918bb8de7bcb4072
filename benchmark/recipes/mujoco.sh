#!/usr/bin/env bash
# MuJoCo table and figures: ppo_continuous.py on the gymnasium v5 MuJoCo tasks with a published PPO number
# (CleanRL: MuJoCo v4; Baselines ppo2: v2 via mujoco-py; the report says where versions differ), 1M steps,
# seeds 1 2, the script's defaults otherwise. 14 runs of about 1M steps each.
#
#   bash benchmark/recipes/mujoco.sh                                                   # local
#   bash benchmark/recipes/mujoco.sh --backend slurm --time 12:00:00 --max-concurrent 14 --wait
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
python -m benchmark.sweep --script ppo_continuous.py \
    --env-ids HalfCheetah-v5 Hopper-v5 Walker2d-v5 InvertedPendulum-v5 Humanoid-v5 Swimmer-v5 Reacher-v5 \
    --seeds 1 2 --out benchmark/runs/mujoco "$@" -- --total-timesteps 1000000 || status=$?
python -m benchmark.report --runs benchmark/runs/mujoco --out benchmark/results/mujoco
exit "$status"
