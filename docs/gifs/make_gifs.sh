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

# Breakout: a run of 200k steps (of the 10M-step default budget) stopped with SIGTERM after iteration 58
# (59,392 steps), on a CPU shared with other runs; the GIF shows its checkpoint (sampled actions, score 5).
# `python ppo_atari.py --resume "$RUNS/BreakoutNoFrameskip-v4__200k"` would train it on to 200k exactly.
python ppo_atari.py --total-timesteps 200000 --torch-threads 1 --save-model --eval-episodes 3 --checkpoint-every 20 --output-dir "$RUNS" --run-name BreakoutNoFrameskip-v4__200k
python ppo_atari.py --eval-checkpoint "$RUNS/BreakoutNoFrameskip-v4__200k/checkpoint.pt" --eval-episodes 1 --capture-video
python -m benchmark.gif "$RUNS/BreakoutNoFrameskip-v4__200k/eval-videos/rl-video-episode-0.mp4" docs/gifs/breakout.gif --width 160 --fps 30 --seconds 12
