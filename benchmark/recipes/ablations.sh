#!/usr/bin/env bash
# The PPO paper's Table 1 ablation (no clipping; clipping; adaptive KL penalty; fixed KL penalty) on our scripts:
# ppo_discrete.py on CartPole-v1 and Acrobot-v1, ppo_continuous.py on Pendulum-v1, seeds 1 2 3, the scripts'
# defaults otherwise (the KL penalty's beta starts at 1, as in the paper). One sweep per env and setting, in
# $RUNS/<env id>/<setting>/: 3 envs x 11 settings x 3 seeds = 99 runs. Then benchmark.ablations writes
# $RESULTS/ablations.{md,csv,png}: normalized scores beside the paper's (MuJoCo, 1M steps).
#
#   bash benchmark/recipes/ablations.sh                             # local, the sweeps one after another
#   bash benchmark/recipes/ablations.sh --backend slurm             # Slurm: submits 33 array jobs and returns (its
#   python -m benchmark.ablations --runs benchmark/runs/ablations --out benchmark/results/ablations  # report: rerun
#                                                                   # this once the jobs are done)
#   STEPS_DISCRETE=2048 STEPS_PENDULUM=2048 SEEDS=1 RUNS=/tmp/ablations RESULTS=/tmp/ablations_results \
#       bash benchmark/recipes/ablations.sh                         # a smoke test of the whole chain
#
# Arguments are passed to every benchmark.sweep. Run it again to finish interrupted or failed sweeps.
set -euo pipefail
cd "$(dirname "$0")/../.."

STEPS_DISCRETE=${STEPS_DISCRETE:-500000}  # CartPole-v1 and Acrobot-v1, as classic_control.sh
STEPS_PENDULUM=${STEPS_PENDULUM:-1000000}  # Pendulum-v1, as pendulum.sh (and the paper's budget)
SEEDS=${SEEDS:-1 2 3}
RUNS=${RUNS:-benchmark/runs/ablations}
RESULTS=${RESULTS:-benchmark/results/ablations}

# "<setting>|<arguments>": the setting names are those of benchmark/ablations.py (SETTINGS)
SETTINGS=(
    "no-clip|--policy-objective none"
    "clip-0.1|--policy-objective clip --clip-coef 0.1"
    "clip-0.2|--policy-objective clip --clip-coef 0.2"
    "clip-0.3|--policy-objective clip --clip-coef 0.3"
    "kl-adaptive-0.003|--policy-objective kl-adaptive --kl-target 0.003"
    "kl-adaptive-0.01|--policy-objective kl-adaptive --kl-target 0.01"
    "kl-adaptive-0.03|--policy-objective kl-adaptive --kl-target 0.03"
    "kl-fixed-0.3|--policy-objective kl-fixed --kl-beta 0.3"
    "kl-fixed-1|--policy-objective kl-fixed --kl-beta 1"
    "kl-fixed-3|--policy-objective kl-fixed --kl-beta 3"
    "kl-fixed-10|--policy-objective kl-fixed --kl-beta 10"
)

status=0
for env_id in CartPole-v1 Acrobot-v1 Pendulum-v1; do
    if [ "$env_id" = Pendulum-v1 ]; then script=ppo_continuous.py steps=$STEPS_PENDULUM; else script=ppo_discrete.py steps=$STEPS_DISCRETE; fi
    for setting in "${SETTINGS[@]}"; do
        read -r -a setting_args <<< "${setting#*|}"
        # shellcheck disable=SC2086  # SEEDS is a list of words
        python -m benchmark.sweep --script "$script" --env-ids "$env_id" --seeds $SEEDS --out "$RUNS/$env_id/${setting%%|*}" \
            "$@" -- --total-timesteps "$steps" "${setting_args[@]}" || status=$?
    done
done
python -m benchmark.ablations --runs "$RUNS" --out "$RESULTS" || status=$?
exit "$status"
