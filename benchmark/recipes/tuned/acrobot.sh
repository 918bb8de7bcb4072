#!/usr/bin/env bash
# Acrobot-v1, ppo_discrete.py: a search whose every trial is 8 seeds (1-8) at the full 500k steps in one process of
# ppo_discrete_seeds.py, then the validation of the configuration it found against the script's defaults on seeds
# 101-108, which the search never used (benchmark/results/tuned/acrobot/). The search runs twenty configurations
# (--enqueue), each to the end (no pruning): variations of 8 envs x 256 steps in 16 minibatches and 4 epochs
# (learning rate 0.0025, GAE lambda 0.9) toward more and smaller updates per sample (10 epochs, 4 envs, minibatches of
# 64), and their entropy, clipping, discount and lambda. A larger --trials goes on with Optuna's TPE; the study
# continues where it stopped when run again.
#
#   bash benchmark/recipes/tuned/acrobot.sh                     # search (resumable), then validate
set -euo pipefail
cd "$(dirname "$0")/../../.."
STUDY=benchmark/studies/acrobot

status=0
python -m benchmark.tune --script ppo_discrete.py --space benchmark/wandb/tune_ppo_discrete_seeds.yaml \
    --env-ids Acrobot-v1 --seeds 1 2 3 4 5 6 7 8 --total-timesteps 500000 --trials 20 --workers 2 --pruner none \
    --report-every 0.25 --poll-interval 15 --study-dir "$STUDY" \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 4, "clip_coef": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "gamma": 0.99, "gae_lambda": 0.9, "ent_coef": 1e-05}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "clip_coef": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "gamma": 0.99, "gae_lambda": 0.9, "ent_coef": 0.001}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 4, "clip_coef": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "gamma": 0.995, "gae_lambda": 0.9, "ent_coef": 0.001}' \
    --enqueue '{"learning_rate": 0.001, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 4, "clip_coef": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "gamma": 0.99, "gae_lambda": 0.9, "ent_coef": 0.001}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 16, "num_steps": 256, "num_minibatches": 32, "update_epochs": 4, "clip_coef": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "gamma": 0.99, "gae_lambda": 0.9, "ent_coef": 0.001}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 4, "clip_coef": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false, "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.001}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 16, "num_steps": 256, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.001, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 4, "num_steps": 256, "num_minibatches": 8, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 128, "num_minibatches": 8, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 4, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.3, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.005, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 4, "num_steps": 256, "num_minibatches": 8, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 4, "num_steps": 256, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.001, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0025, "num_envs": 4, "num_steps": 256, "num_minibatches": 16, "update_epochs": 10, "gamma": 0.99, "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    "$@" || status=$?
# The configuration validated: trial 13, the best of the 20 (4 envs x 256 steps, 16 minibatches, 10 epochs).
python -m benchmark.tune validate --study-dir "$STUDY" --trial 13 --total-timesteps 500000 \
    --out benchmark/results/tuned/acrobot
exit "$status"
