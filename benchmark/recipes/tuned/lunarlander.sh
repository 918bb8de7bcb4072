#!/usr/bin/env bash
# LunarLander-v3, ppo_discrete.py: a search whose every trial is 4 seeds (1-4) at 300k steps in one process of
# ppo_discrete_seeds.py, then the validation of a configuration it found against the script's defaults on seeds
# 101-108, which the search never used, at the full 500k steps (benchmark/results/tuned/lunarlander/). The search
# tries four configurations first (--enqueue), then Optuna's TPE; it continues where it stopped when run again.
#
#   bash benchmark/recipes/tuned/lunarlander.sh                 # search (resumable), then validate
set -euo pipefail
cd "$(dirname "$0")/../../.."
STUDY=benchmark/studies/lunarlander

status=0
python -m benchmark.tune --script ppo_discrete.py --space benchmark/wandb/tune_ppo_discrete_seeds.yaml \
    --env-ids LunarLander-v3 --total-timesteps 300000 --trials 40 --workers 1 --report-every 0.2 --startup-trials 3 \
    --poll-interval 10 --study-dir "$STUDY" \
    --enqueue '{"learning_rate": 0.0003, "num_envs": 16, "num_steps": 1024, "num_minibatches": 64, "update_epochs": 4, "gamma": 0.999, "gae_lambda": 0.98, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.001, "num_envs": 8, "num_steps": 256, "num_minibatches": 16, "update_epochs": 8, "gamma": 0.999, "gae_lambda": 0.98, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.0003, "num_envs": 4, "num_steps": 512, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.999, "gae_lambda": 0.98, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    --enqueue '{"learning_rate": 0.001, "num_envs": 8, "num_steps": 256, "num_minibatches": 32, "update_epochs": 10, "gamma": 0.999, "gae_lambda": 0.98, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "no_anneal_lr": false}' \
    "$@" || status=$?
# The configuration validated: trial 11, the best of the study's first 14 trials.
python -m benchmark.tune validate --study-dir "$STUDY" --trial 11 --total-timesteps 500000 \
    --out benchmark/results/tuned/lunarlander
exit "$status"
