#!/usr/bin/env bash
# Hopper-v5, ppo_continuous.py: a search whose every trial is 4 seeds (1-4) at 500k steps in one process of
# ppo_continuous_seeds.py, then the validation of a configuration it found against the script's defaults on seeds
# 101-108, which the search never used, at the full 1M steps (benchmark/results/tuned/hopper/). The search tries six
# configurations first (--enqueue): many short rollouts (8 envs x 256 steps, the layout of Tianshou's MuJoCo PPO),
# the defaults with a longer horizon (gamma 0.995) and a smaller initial policy std (--log-std-init -0.5), both
# together, rl-zoo's Hopper configuration, gamma 0.999, and the defaults with gamma 0.995 alone; then Optuna's TPE.
# No pruning, so that every enqueued configuration completes. It continues where it stopped when run again.
#
#   bash benchmark/recipes/tuned/hopper.sh                      # search (resumable), then validate
set -euo pipefail
cd "$(dirname "$0")/../../.."
STUDY=benchmark/studies/hopper

status=0
python -m benchmark.tune --script ppo_continuous.py --space benchmark/wandb/tune_ppo_continuous_seeds.yaml \
    --env-ids Hopper-v5 --total-timesteps 500000 --trials 12 --workers 1 --pruner none \
    --report-every 0.25 --poll-interval 15 --study-dir "$STUDY" \
    --enqueue '{"learning_rate": 0.0003, "num_envs": 8, "num_steps": 256, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.0, "vf_coef": 0.25, "max_grad_norm": 0.5, "no_anneal_lr": false, "no_norm_reward": false, "log_std_init": -0.5}' \
    --enqueue '{"learning_rate": 0.0003, "num_envs": 1, "num_steps": 2048, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.995, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "no_norm_reward": false, "log_std_init": -0.5}' \
    --enqueue '{"learning_rate": 0.0003, "num_envs": 8, "num_steps": 256, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.995, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.0, "vf_coef": 0.25, "max_grad_norm": 0.5, "no_anneal_lr": false, "no_norm_reward": false, "log_std_init": -0.5}' \
    --enqueue '{"learning_rate": 0.0001, "num_envs": 1, "num_steps": 512, "num_minibatches": 16, "update_epochs": 5, "gamma": 0.999, "gae_lambda": 0.99, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.84, "max_grad_norm": 0.8, "no_anneal_lr": false, "no_norm_reward": false, "log_std_init": -2.0}' \
    --enqueue '{"learning_rate": 0.0003, "num_envs": 1, "num_steps": 2048, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.999, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "no_norm_reward": false, "log_std_init": -0.5}' \
    --enqueue '{"learning_rate": 0.0003, "num_envs": 1, "num_steps": 2048, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.995, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "no_norm_reward": false, "log_std_init": 0.0}' \
    "$@" || status=$?
# The configuration validated: the defaults with gamma 0.995 (trial 5 here; trial 6 of the study behind the table,
# whose stopped and restarted trials shifted the numbering).
python -m benchmark.tune validate --study-dir "$STUDY" --trial 5 --total-timesteps 1000000 \
    --out benchmark/results/tuned/hopper
exit "$status"
