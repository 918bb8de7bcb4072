#!/usr/bin/env bash
# The GIFs in README (docs/gifs/): a trained agent per script, from real training runs at the defaults.
# Each: train with --save-model, evaluate greedily with --capture-video, turn one episode into a GIF.
#
#   bash docs/gifs/make_gifs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export SDL_VIDEODRIVER=dummy MUJOCO_GL=egl
RUNS=${RUNS:-benchmark/runs/gifs}

# CartPole-v1: the defaults, 500k steps (about 6 minutes on 2 shared cores)
python ppo_discrete.py --save-model --output-dir "$RUNS" --run-name CartPole-v1__500k
python ppo_discrete.py --eval-checkpoint "$RUNS/CartPole-v1__500k/model.pt" --eval-episodes 2 --eval-deterministic --capture-video
python -m benchmark.gif "$RUNS/CartPole-v1__500k/eval-videos/rl-video-episode-0.mp4" docs/gifs/cartpole.gif --width 240 --fps 25 --seconds 6

# Pendulum-v1: the defaults, 1M steps, seed 1 (about 30 minutes); episode 1 starts hanging down and swings up
python ppo_continuous.py --seed 1 --save-model --output-dir "$RUNS" --run-name Pendulum-v1__1M
python ppo_continuous.py --eval-checkpoint "$RUNS/Pendulum-v1__1M/model.pt" --eval-episodes 3 --eval-deterministic --capture-video
python -m benchmark.gif "$RUNS/Pendulum-v1__1M/eval-videos/rl-video-episode-1.mp4" docs/gifs/pendulum.gif --width 200 --fps 20 --seconds 8

# Breakout: 100k steps of the 10M-step default budget, one torch thread (the CNN in bfloat16 where the CPU multiplies
# bf16 natively, --precision auto); the GIF shows the saved model's evaluation episode (sampled actions).
python ppo_atari.py --total-timesteps 100000 --torch-threads 1 --save-model --eval-episodes 3 --output-dir "$RUNS" --run-name BreakoutNoFrameskip-v4__100k
python ppo_atari.py --eval-checkpoint "$RUNS/BreakoutNoFrameskip-v4__100k/model.pt" --eval-episodes 1 --capture-video
python -m benchmark.gif "$RUNS/BreakoutNoFrameskip-v4__100k/eval-videos/rl-video-episode-0.mp4" docs/gifs/breakout.gif --width 160 --fps 30 --seconds 12
