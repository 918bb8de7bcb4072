"""PPO-Clip for continuous actions (Box) and vector observations, in one file.

Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347) with the implementation details
that published results depend on, each named where it happens. Equation numbers refer to the PPO paper.
The same algorithm as ppo_discrete.py (`diff` the two): a Gaussian policy instead of a categorical one,
actions clipped to the bounds on their way to the env, observation normalization and reward scaling.

    python ppo_continuous.py --env-id Pendulum-v1
    MUJOCO_GL=egl python ppo_continuous.py --env-id HalfCheetah-v5 --seed 2 --capture-video
    python ppo_continuous.py --eval-checkpoint runs/<run>/model.pt --eval-episodes 10
    python ppo_continuous.py --checkpoint-every 10      # then, after Ctrl-C, SIGTERM or a crash:
    python ppo_continuous.py --resume runs/<run>        # continues exactly where the checkpoint left off
"""

import importlib
import json
import math
import os
import pathlib
import random
import shutil
import signal
import sys
import time
import zipfile
from collections import deque
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Literal, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro

SCRIPT = "ppo_continuous"
HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))


@dataclass
class Args:
    # --- Algorithm ---
    env_id: str = "Pendulum-v1"
    """gymnasium environment id (Box actions, flat Box observations), e.g. HalfCheetah-v5"""
    total_timesteps: int = 1_000_000
    """total environment steps, over all environments"""
    learning_rate: float = 3e-4
    """Adam learning rate"""
    num_envs: int = 1
    """number of parallel environments (N in the paper)"""
    num_steps: int = 2048
    """steps per environment per rollout (T in the paper)"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over the run"""
    gamma: float = 0.99
    """discount factor (gamma)"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 32
    """minibatches per epoch; the batch N*T is split into this many"""
    update_epochs: int = 10
    """epochs over each batch (K in the paper)"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""
    policy_objective: Literal["clip", "kl-adaptive", "kl-fixed", "none"] = "clip"
    """policy surrogate (Table 1): clip (Eq. 7); kl-adaptive or kl-fixed (KL penalty, Eq. 8); none (Eq. 6)"""
    clip_coef: float = 0.2
    """surrogate clipping coefficient (epsilon in Eq. 7), also the value clipping range (initial if adapted)"""
    adaptive_clip: bool = False
    """adapt epsilon to kl_target after each update (update_clip_coef; clip objective only)"""
    kl_target: float = 0.01
    """target KL d_targ of kl-adaptive and adaptive_clip (the paper's 0.01); not target_kl, the early stop"""
    kl_beta: float = 1.0
    """KL penalty coefficient beta of Eq. 8: constant under kl-fixed, initial under kl-adaptive (the paper's 1)"""
    clip_vloss: bool = True
    """clip the value loss around the rollout's value estimates"""
    ent_coef: float = 0.0
    """entropy bonus coefficient (c2 in Eq. 9)"""
    vf_coef: float = 0.5
    """value loss coefficient (c1 in Eq. 9)"""
    max_grad_norm: float = 0.5
    """maximum global norm of the gradient"""
    target_kl: Optional[float] = None
    """stop the update early once the approximate KL of a minibatch exceeds this (off by default)"""
    log_std_init: float = 0.0
    """initial log std of the Gaussian policy in every action dimension (0: std 1); learned from there"""
    norm_obs: bool = True
    """normalize observations by their running mean and std, clipped to [-obs_clip, obs_clip]"""
    obs_clip: float = 10.0
    """clip normalized observations to [-obs_clip, obs_clip]"""
    norm_reward: bool = True
    """scale rewards by the running std of the discounted return, clipped to [-reward_clip, reward_clip]"""
    reward_clip: float = 10.0
    """clip scaled rewards to [-reward_clip, reward_clip]"""
    # --- Experiment ---
    exp_name: str = SCRIPT
    """name of the experiment, part of the run name"""
    seed: int = 1
    """seed of python, numpy, torch and the environments"""
    torch_deterministic: bool = True
    """make cuDNN deterministic (`torch.backends.cudnn.deterministic`)"""
    cuda: bool = True
    """use CUDA when it is available"""
    torch_threads: int = 1
    """torch CPU threads; 1 is fastest for small MLPs, and results repeat exactly only at a fixed count"""
    output_dir: str = "runs"
    """TensorBoard events, saved model and evaluation results go to {output_dir}/{run_name}"""
    run_name: Optional[str] = None
    """run name; default {env_id}__{exp_name}__{seed}__{unix time}"""
    track: bool = False
    """log to Weights & Biases (works with WANDB_MODE=offline)"""
    wandb_project_name: str = "ppo-reference"
    """W&B project"""
    wandb_entity: Optional[str] = None
    """W&B entity (team or user)"""
    capture_video: bool = False
    """record videos of the first environment to videos/{run_name}"""
    save_model: bool = False
    """save the trained agent to {output_dir}/{run_name}/model.pt and evaluate it"""
    progress_interval: float = 10.0
    """seconds between progress lines on the console"""
    # --- Evaluation ---
    eval_checkpoint: Optional[str] = None
    """evaluate this saved model instead of training"""
    eval_episodes: int = 10
    """number of evaluation episodes"""
    eval_deterministic: bool = False
    """evaluate with the most likely action (argmax; the mean of a Gaussian) instead of sampling"""
    # --- Checkpoints ---
    checkpoint_every: int = 0
    """write checkpoint.pt in the run directory every this many iterations and at the end (0: only on a signal)"""
    resume: Optional[str] = None
    """continue the run of this checkpoint (or run directory) exactly; options not typed: the checkpoint's"""


def make_env(env_id: str, idx: int, capture_video: bool, video_dir: str):
    """A thunk that builds one environment; the episode statistics wrapper reports undiscounted returns."""

    def thunk() -> gym.Env:
        if capture_video and idx == 0:
            env = gym.make(env_id, render_mode="rgb_array")
            env = gym.wrappers.RecordVideo(env, video_dir)
        else:
            env = gym.make(env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        return ResumableEnv(env)  # outermost: checkpoints read and restore the env through it

    return thunk


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain `std` and constant bias: the initialization of the PPO reference code."""
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Separate actor and critic MLPs (64-64, tanh), orthogonal init; a Gaussian policy, its log std learned."""

    def __init__(self, obs_dim: int, action_dim: int, log_std_init: float = 0.0):
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),  # value head gain 1
        )  # fmt: skip
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, action_dim), std=0.01),  # mean head gain 0.01: initial mean near 0 everywhere
        )  # fmt: skip
        self.actor_logstd = nn.Parameter(torch.full((action_dim,), log_std_init))  # log sigma, learned (0: sigma 1)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def sample_action(self, x: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """a ~ pi(.|x), mean + std * N(0, 1) (the mean when deterministic): the actor and the noise alone."""
        mean = self.actor(x)  # (batch, action_dim)
        if deterministic:
            return mean
        return mean + self.actor_logstd.exp() * torch.randn_like(mean)

    def get_action(self, x: torch.Tensor, action: Optional[torch.Tensor] = None, deterministic: bool = False):
        """Returns action, log pi(action|x) and pi(.|x)'s parameters, mean and log std (batch, 2, action_dim); samples
        the action when none is given. N(mean, std^2) written out for speed alone: no torch.distributions checks."""
        if action is None:
            action = self.sample_action(x, deterministic)
        mean = self.actor(x)  # (batch, action_dim)
        log_std = self.actor_logstd.expand_as(mean)
        z = (action - mean) / log_std.exp()  # the standardized action
        # log N(a; mean, std^2) = -z^2 / 2 - log std - log(2 pi) / 2, z = (a - mean) / std
        logprob = (-0.5 * z**2 - log_std - HALF_LOG_2PI).sum(dim=-1)
        return action, logprob, torch.stack((mean, log_std), dim=-2)

    def get_action_and_value(self, x: torch.Tensor, action: Optional[torch.Tensor] = None, deterministic: bool = False):
        """Returns action, log pi(action|x), entropy of pi(.|x), V(x) and pi's parameters: what the update needs."""
        action, logprob, params = self.get_action(x, action, deterministic)
        entropy = (0.5 + HALF_LOG_2PI + self.actor_logstd.expand_as(action)).sum(dim=-1)  # sum of log(std sqrt(2 pi e))
        return action, logprob, entropy, self.get_value(x), params

    @staticmethod
    def exact_kl(old_params: torch.Tensor, new_params: torch.Tensor) -> torch.Tensor:
        """KL(pi_old(.|s) || pi_new(.|s)) per state, from two policies' parameters as get_action returns them."""
        return gaussian_kl(old_params[..., 0, :], old_params[..., 1, :], new_params[..., 0, :], new_params[..., 1, :])


class RunningMeanStd:
    """Running mean and variance, merged batch by batch (Chan et al.'s parallel algorithm, exact); float64."""

    def __init__(self, shape: tuple = ()):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)  # variance 1 until the first update: normalize() is a shift
        self.count = 0

    def update(self, batch: np.ndarray) -> None:
        batch_count = batch.shape[0]
        batch_mean = batch.sum(axis=0) / batch_count  # ndarray.sum, not np.mean / np.var: less overhead on a few rows
        batch_var = np.square(batch - batch_mean).sum(axis=0) / batch_count
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * (batch_count / total)
        self.var = (
            self.var * self.count + batch_var * batch_count + delta**2 * (self.count * batch_count / total)
        ) / total
        self.count = total

    def normalize(self, x: np.ndarray, clip: float) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip)

    def state_dict(self) -> dict:  # for checkpoints: tensors, which torch.load(weights_only=True) reads
        return {"mean": torch.tensor(self.mean), "var": torch.tensor(self.var), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"].numpy().copy(), state["var"].numpy().copy(), state["count"]


def normalize_obs(obs_rms: Optional[RunningMeanStd], observations: np.ndarray, clip: float, update: bool, device):
    """Observations as the agent sees them and the rollout stores them: float32, normalized unless obs_rms is None."""
    if obs_rms is not None and update:
        obs_rms.update(observations)
    observations = observations if obs_rms is None else obs_rms.normalize(observations, clip)
    return torch.as_tensor(observations, dtype=torch.float32, device=device)


class RewardScaler:
    """Reward scaling: r_t / std(R), R_t = r_t + gamma * R_{t-1} each env's discounted return so far in its episode,
    std(R) its running std over all envs and steps; not centred (rewards keep their sign), clipped to [-clip, clip]."""

    def __init__(self, shape: tuple, gamma: float, clip: float):
        self.gamma, self.clip = gamma, clip
        self.discounted_returns = np.zeros(shape, dtype=np.float64)  # R_t per env, shape (num_envs, ...)
        self.return_rms = RunningMeanStd(shape[1:])  # over axis 0, the envs

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.discounted_returns = self.discounted_returns * self.gamma + rewards
        self.return_rms.update(self.discounted_returns)
        self.discounted_returns[dones] = 0.0  # the next step starts a new episode
        return np.clip(rewards / np.sqrt(self.return_rms.var + 1e-8), -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"discounted_returns": torch.tensor(self.discounted_returns), "return_rms": self.return_rms.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.discounted_returns = state["discounted_returns"].numpy().copy()
        self.return_rms.load_state_dict(state["return_rms"])


def compute_gae(rewards, values, dones, final_values, next_value, gamma, gae_lambda):
    """Generalized Advantage Estimation, Eq. 11-12: A_t = sum_l (gamma*lambda)^l delta_{t+l},
    delta_t = r_t + gamma * V(s_{t+1}) - V(s_t). Inputs are (..., num_steps, num_envs), time on axis -2 and any
    leading axes carried through; next_value is V of the observation after the last step, (..., num_envs).

    Where an episode ends at step t the next stored state belongs to a new episode, so V(s_{t+1}) is
    replaced by final_values[t]: V(final observation) when the episode was truncated by a time limit
    (the state had a future), 0 when it terminated. Returns (advantages, returns = advantages + values)."""
    rewards, dones = torch.as_tensor(rewards, device=values.device), torch.as_tensor(dones, device=values.device)
    next_values = torch.cat((values[..., 1:, :], next_value.unsqueeze(-2)), dim=-2)  # V(s_{t+1}) within the rollout
    next_values = torch.where(dones, final_values, next_values)  # ... unless the episode ended at t
    deltas = rewards + gamma * next_values - values  # TD errors, Eq. 12
    decay = gamma * gae_lambda * (~dones).to(rewards.dtype)  # no credit flows across an episode boundary
    # The backward recursion runs in numpy for speed alone (lower per-call overhead on tiny arrays than torch); the
    # cost: on a GPU, the rollout's deltas go to the CPU and the advantages back, every iteration
    deltas, decay = deltas.cpu().numpy(), decay.cpu().numpy()
    advantages = np.zeros_like(deltas)
    lastgaelam = np.zeros_like(deltas[..., 0, :])
    for t in reversed(range(deltas.shape[-2])):
        lastgaelam = deltas[..., t, :] + decay[..., t, :] * lastgaelam
        advantages[..., t, :] = lastgaelam
    advantages = torch.as_tensor(advantages, device=values.device)
    return advantages, advantages + values


def clipped_surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """Clipped surrogate objective L^CLIP, Eq. 7, negated for gradient descent:
    -E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)]. The losses average over the last axis, the minibatch: inputs
    with a leading batch axis get one loss per entry of it."""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return -torch.min(unclipped, clipped).mean(dim=-1)


def surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Unclipped surrogate L^CPI, Eq. 6, negated: -E[r_t A_t], the importance-weighted policy gradient with nothing
    to keep r_t near 1 ("no clipping or penalty" in Table 1)."""
    return -(ratio * advantages).mean(dim=-1)


def kl_penalty_loss(ratio: torch.Tensor, advantages: torch.Tensor, kl: torch.Tensor, kl_beta: float) -> torch.Tensor:
    """KL-penalized surrogate L^KLPEN, Eq. 8, negated: -E[r_t A_t - beta KL[pi_old(.|s_t), pi(.|s_t)]], with the
    exact KL of each state (`kl`, the same shape as `ratio`)."""
    return surrogate_loss(ratio, advantages) + kl_beta * kl.mean(dim=-1)


def gaussian_kl(old_mean, old_log_std, new_mean, new_log_std) -> torch.Tensor:
    """Exact KL(old || new) of diagonal Gaussians, (..., action_dim) each; returns (...), the sum over the independent
    dimensions of log(std_new / std_old) + (std_old^2 + (mean_old - mean_new)^2) / (2 std_new^2) - 1/2."""
    variance_ratio = torch.exp(2.0 * (old_log_std - new_log_std))  # std_old^2 / std_new^2
    mean_term = ((old_mean - new_mean) / new_log_std.exp()) ** 2
    return (new_log_std - old_log_std + 0.5 * (variance_ratio + mean_term) - 0.5).sum(dim=-1)


def update_kl_beta(kl_beta: float, kl: float, kl_target: float) -> float:
    """Adaptive KL penalty coefficient (the paper, Section 4): after an update that measured the KL d, halve beta
    when d < d_targ / 1.5, double it when d > d_targ * 1.5, else keep it; the next update uses the result."""
    if kl < kl_target / 1.5:
        return kl_beta / 2.0
    if kl > kl_target * 1.5:
        return kl_beta * 2.0
    return kl_beta


def update_clip_coef(clip_coef: float, kl: float, kl_target: float, low: float = 0.02, high: float = 0.5) -> float:
    """Adaptive clip range (not in the paper: its beta rule turned around): epsilon / 1.5 when d > d_targ * 1.5,
    * 1.5 when d < d_targ / 1.5, kept in [0.02, 0.5], around the paper's settings (0.1 to 0.3)."""
    if kl > kl_target * 1.5:
        clip_coef = clip_coef / 1.5
    elif kl < kl_target / 1.5:
        clip_coef = clip_coef * 1.5
    return min(max(clip_coef, low), high)


def value_loss(newvalues, oldvalues, returns, clip_coef: float, clip_vloss: bool) -> torch.Tensor:
    """Squared-error value loss (L^VF in Eq. 9), optionally clipped around the rollout's values as in the
    PPO reference code: max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)."""
    unclipped = (newvalues - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean(dim=-1)
    clipped_values = oldvalues + torch.clamp(newvalues - oldvalues, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (clipped_values - returns) ** 2).mean(dim=-1)


def kl_estimators(logratio: torch.Tensor):
    """Sample estimates of KL(pi_old || pi_new) from log(pi_new/pi_old) at actions drawn from pi_old:
    k1 = E[-log r] (unbiased, high variance) and k3 = E[(r - 1) - log r] (unbiased, lower variance, >= 0)."""
    ratio = logratio.exp()
    return (-logratio).mean(dim=-1), ((ratio - 1.0) - logratio).mean(dim=-1)


def explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """1 - Var(targets - predictions) / Var(targets): 1 is a perfect critic, 0 no better than a constant."""
    var_targets = targets.var()
    return float("nan") if var_targets == 0 else float(1.0 - (targets - predictions).var() / var_targets)


def update_statistics(minibatch_stats: list, minibatch_logratios: list, clip_coef: float) -> dict:
    """Means over all minibatches of an update: what each recorded, the KL estimates k1, k3 and the clip fraction."""
    with torch.no_grad():
        per_minibatch = torch.stack([torch.stack(list(stats.values())) for stats in minibatch_stats])
        stat_means = dict(zip(minibatch_stats[0], per_minibatch.mean(dim=0).tolist()))
        logratios = torch.stack(minibatch_logratios)  # (num_updates, minibatch_size): all minibatches alike
        old_approx_kl, approx_kl = kl_estimators(logratios.flatten())
        clipfrac = ((logratios.exp() - 1.0).abs() > clip_coef).float().mean()  # against the current epsilon
    stat_means.update(old_approx_kl=old_approx_kl.item(), approx_kl=approx_kl.item(), clipfrac=clipfrac.item())
    return stat_means


def main(args: Args, argv: Sequence[str] = ()) -> None:
    args, checkpoint, run_dir = resolve_args(args, argv)  # on --resume: the checkpoint's options, but those typed
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    if args.eval_checkpoint is not None:
        return evaluate_checkpoint(args, device)
    batch_size = args.num_envs * args.num_steps  # N * T transitions per iteration
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size

    # --- Seeding ---
    seed_everything(args.seed, args.torch_deterministic)  # python, numpy and torch; cuDNN deterministic
    minibatch_rng = np.random.default_rng(args.seed)  # shuffles minibatches

    # --- Environments ---
    # SAME_STEP autoreset: a step that ends an episode returns the next episode's first observation and puts
    # the final one in infos["final_obs"]. Every stored transition is real (the default NEXT_STEP mode would
    # spend the following step on a reset whose action is ignored: a fake transition in the batch).
    video_dir = f"videos/{os.path.basename(run_dir)}"
    env_fns = [make_env(args.env_id, i, args.capture_video, video_dir) for i in range(args.num_envs)]
    envs = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs_shape, action_shape = envs.single_observation_space.shape, envs.single_action_space.shape
    agent = Agent(int(np.prod(obs_shape)), int(np.prod(action_shape)), args.log_std_init).to(device)
    flat_params = flatten_parameters(agent)  # speed alone: fused Adam and clipping on one tensor, not one per layer
    optimizer = torch.optim.Adam([flat_params], lr=args.learning_rate, eps=1e-5, fused=True)  # Adam eps 1e-5, not 1e-8
    # Observation normalization and reward scaling, in the loop: gymnasium's wrappers keep statistics per env
    obs_rms = RunningMeanStd(obs_shape) if args.norm_obs else None
    reward_scaler = RewardScaler((args.num_envs,), args.gamma, args.reward_clip) if args.norm_reward else None
    normalizers = {"obs_rms": obs_rms, "reward_scaler": reward_scaler}  # running statistics a checkpoint keeps

    # --- Storage: fixed-size rollout buffers ---
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape, device=device)  # (num_steps, num_envs, obs_dim)
    actions = torch.zeros((args.num_steps, args.num_envs) + action_shape, device=device)  # unclipped samples
    logprobs = torch.zeros((args.num_steps, args.num_envs), device=device)
    # the rollout policy's parameters, mean and log std (num_steps, num_envs, 2, action_dim): for the exact KL
    policy_params = torch.zeros((args.num_steps, args.num_envs, 2) + action_shape, device=device)
    # For speed alone (less per-call overhead than a tensor store), env returns stay in numpy until the rollout ends
    rewards = np.zeros((args.num_steps, args.num_envs), dtype=np.float32)
    dones = np.zeros((args.num_steps, args.num_envs), dtype=bool)
    values = torch.zeros((args.num_steps, args.num_envs), device=device)
    final_values = torch.zeros((args.num_steps, args.num_envs), device=device)  # V(final obs) where truncated
    next_obs, _ = envs.reset(seed=args.seed)
    next_obs = normalize_obs(obs_rms, next_obs, args.obs_clip, update=True, device=device)

    # --- Resume: everything the checkpoint holds goes back, so the run goes on as if it had never stopped ---
    global_step, start_iteration, recent_returns = 0, 0, deque(maxlen=100)  # recent returns: for the progress line
    kl_beta = args.kl_beta  # KL penalty coefficient (Eq. 8): adapted after each update under kl-adaptive
    clip_coef = args.clip_coef  # clip epsilon (Eq. 7): adapted after each update under adaptive_clip
    start_time = time.time()
    if checkpoint is not None:
        training = checkpoint["training"]
        next_obs = resume_run(checkpoint, agent, optimizer, normalizers, envs, minibatch_rng, next_obs, num_iterations)
        start_iteration, global_step = training["iteration"], training["global_step"]
        kl_beta, clip_coef = training["kl_beta"], training["clip_coef"]
        recent_returns.extend(training["recent_returns"])
        start_time -= training["elapsed"]

    # --- Tracking: TensorBoard always, W&B on request ---
    writer, wandb_id = start_tracking(args, run_dir, checkpoint)

    # SIGINT or SIGTERM: stop after this iteration, with a checkpoint (a second one: at once)
    with TrainingLoop(args, run_dir, writer, envs, checkpoint, num_iterations, start_time) as loop:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            if args.anneal_lr:  # linear learning-rate annealing from learning_rate to 0
                optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate

            # ---------------- Rollout: num_steps steps in each of num_envs envs ----------------
            final_values.zero_()
            with torch.inference_mode():  # no autograd while acting: entered once per rollout, not once per step
                for step in range(args.num_steps):
                    global_step += args.num_envs
                    obs[step] = next_obs
                    action = agent.sample_action(next_obs)  # the actor alone: no critic, no log-prob per step
                    actions[step] = action
                    # The env gets the action clipped to its bounds; the unclipped sample is stored and scored (in r_t)
                    clipped_action = np.clip(action.cpu().numpy(), envs.action_space.low, envs.action_space.high)
                    next_obs, reward, terminations, truncations, infos = envs.step(clipped_action)
                    reward = reward_scaler(reward, terminations | truncations) if reward_scaler is not None else reward
                    rewards[step] = reward
                    dones[step] = terminations | truncations
                    next_obs = normalize_obs(obs_rms, next_obs, args.obs_clip, update=True, device=device)
                    if "final_obs" in infos:
                        # Time-limit truncation is not termination: bootstrap from V(final observation), normalized
                        # as the critic's inputs (Pendulum, only ever truncated, fails without it: benchmark/evidence)
                        truncated_only = truncations & ~terminations
                        if truncated_only.any():
                            final_obs = np.stack(infos["final_obs"][truncated_only])
                            final_obs = normalize_obs(obs_rms, final_obs, args.obs_clip, update=False, device=device)
                            truncated_envs = torch.as_tensor(truncated_only, device=device)
                            final_values[step, truncated_envs] = agent.get_value(final_obs)
                        if "episode" in infos["final_info"]:
                            episode, finished = infos["final_info"]["episode"], infos["final_info"]["_episode"]
                            for episodic_return, episodic_length in zip(episode["r"][finished], episode["l"][finished]):
                                recent_returns.append(float(episodic_return))
                                writer.add_scalar("charts/episodic_return", episodic_return, global_step)
                                writer.add_scalar("charts/episodic_length", episodic_length, global_step)

                # V(s_t), log pi(a_t|s_t) and pi(.|s_t) of the whole rollout in one pass each (the policy is unchanged)
                values[:] = agent.get_value(obs)  # (num_steps, num_envs)
                _, logprobs[:], policy_params[:] = agent.get_action(obs, actions)

            # ---------------- Advantages: GAE over the rollout ----------------
            with torch.inference_mode():
                next_value = agent.get_value(next_obs)
            advantages, returns = compute_gae(
                rewards, values, dones, final_values, next_value, args.gamma, args.gae_lambda
            )

            # Flatten the batch: (num_steps, num_envs, ...) -> (batch_size, ...)
            b_obs = obs.reshape((-1,) + obs_shape)
            b_actions = actions.reshape((-1,) + envs.single_action_space.shape)
            b_logprobs = logprobs.reshape(-1)
            b_policy_params = policy_params.reshape((batch_size,) + policy_params.shape[2:])
            b_advantages = advantages.reshape(-1)
            b_returns = returns.reshape(-1)
            b_values = values.reshape(-1)

            # ---------------- Update: update_epochs epochs of shuffled minibatches ----------------
            minibatch_stats, minibatch_logratios = [], []  # per minibatch: its losses and diagnostics; its log r_t
            stop_early = False
            for epoch in range(args.update_epochs):
                batch_indices = torch.as_tensor(minibatch_rng.permutation(batch_size), device=device)  # shuffled
                for start in range(0, batch_size, minibatch_size):
                    mb_inds = batch_indices[start : start + minibatch_size]
                    _, newlogprob, entropy, newvalue, new_policy_params = agent.get_action_and_value(
                        b_obs[mb_inds], b_actions[mb_inds]
                    )
                    logratio = newlogprob - b_logprobs[mb_inds]
                    ratio = logratio.exp()  # probability ratio r_t(theta), Eq. 6
                    exact_kl = agent.exact_kl(b_policy_params[mb_inds], new_policy_params)  # KL[pi_old, pi] per state

                    mb_advantages = b_advantages[mb_inds]
                    if args.norm_adv:  # per-minibatch advantage normalization
                        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                    if args.policy_objective == "clip":
                        pg_loss = clipped_surrogate_loss(ratio, mb_advantages, clip_coef)  # clipped surrogate, Eq. 7
                    elif args.policy_objective == "none":  # unclipped surrogate L^CPI, Eq. 6: no trust region
                        pg_loss = surrogate_loss(ratio, mb_advantages)
                    else:  # kl-adaptive, kl-fixed: KL-penalized surrogate, Eq. 8
                        pg_loss = kl_penalty_loss(ratio, mb_advantages, exact_kl, kl_beta)
                    # value loss L^VF (Eq. 9), clipped if clip_vloss, with the current epsilon whatever the objective
                    v_loss = value_loss(newvalue, b_values[mb_inds], b_returns[mb_inds], clip_coef, args.clip_vloss)
                    entropy_loss = entropy.mean()  # entropy bonus S, Eq. 9
                    entropy_term = args.ent_coef * entropy_loss if args.ent_coef > 0 else 0.0  # at 0: not in the graph
                    loss = pg_loss - entropy_term + args.vf_coef * v_loss  # combined objective, Eq. 9 (negated)

                    flat_params.grad.zero_()  # zeroed in place, not set to None: the agent's gradients are views of it
                    loss.backward()
                    # Global gradient-norm clipping: clip_grad_norm_ written out for speed alone, with no bookkeeping
                    grad_norm = torch.linalg.vector_norm(flat_params.grad)  # the norm before clipping, logged
                    flat_params.grad.mul_(torch.clamp(args.max_grad_norm / (grad_norm + 1e-6), max=1.0))
                    optimizer.step()
                    minibatch_stats.append({
                        "policy_loss": pg_loss.detach(), "value_loss": v_loss.detach(),
                        "entropy": entropy_loss.detach(), "exact_kl": exact_kl.detach().mean(), "grad_norm": grad_norm,
                    })  # fmt: skip
                    minibatch_logratios.append(logratio.detach())
                    if args.target_kl is not None and kl_estimators(logratio.detach())[1].item() > args.target_kl:
                        stop_early = True  # KL early stop, per minibatch, on the k3 estimate
                        break
                if stop_early:
                    break

            # Diagnostics: means over every minibatch of the update, not the last minibatch's values
            stat_means = update_statistics(minibatch_stats, minibatch_logratios, clip_coef)
            loop.check_finite(stat_means, iteration, global_step)  # before a NaN reaches a checkpoint

            # Adapt beta (adaptive KL penalty, Section 4) or epsilon for the next update from d, the exact KL of this
            # update: the mean of its minibatches' KLs, each taken before that minibatch's step (the paper's: after)
            if args.policy_objective == "kl-adaptive":
                kl_beta = update_kl_beta(kl_beta, stat_means["exact_kl"], args.kl_target)
            if args.adaptive_clip:
                clip_coef = update_clip_coef(clip_coef, stat_means["exact_kl"], args.kl_target)

            # ---------------- Logging ----------------
            writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
            for name, mean in stat_means.items():
                writer.add_scalar(f"losses/{name}", mean, global_step)
            writer.add_scalar("charts/kl_beta", kl_beta, global_step)  # beta and epsilon after adaptation: the next's
            writer.add_scalar("charts/clip_coef", clip_coef, global_step)
            writer.add_scalar("losses/explained_variance", explained_variance(b_values, b_returns), global_step)
            writer.add_scalar("charts/update_epochs_done", len(minibatch_stats) / args.num_minibatches, global_step)
            writer.add_scalar("charts/SPS", int(global_step / (time.time() - start_time)), global_step)
            loop.report(iteration, global_step, recent_returns)  # a console line every progress_interval seconds

            # ---------------- Checkpoint: every checkpoint_every iterations, at the end, on a signal ----------------
            if loop.checkpoint_due(iteration):
                loop.save_checkpoint(agent, optimizer, normalizers, minibatch_rng,
                    iteration=iteration, global_step=global_step, elapsed=time.time() - start_time, next_obs=next_obs,
                    recent_returns=recent_returns, kl_beta=kl_beta, clip_coef=clip_coef, wandb_id=wandb_id)  # fmt: skip
            loop.exit_if_requested(iteration, global_step)

    # --- Finish: summary line, saved model and its evaluation ---
    loop.finish(global_step, recent_returns, agent, normalizers, device)  # then TensorBoard and W&B close


# =====================================================================================================================
# Everything below runs the job, not PPO: checks, tracking, signals, checkpoints and resume, evaluation, the console
# =====================================================================================================================


CHECKPOINT_FORMAT = 2  # the layout of checkpoint.pt and model.pt that this script reads and writes
# Options a resumed run may change; every other one must stay what the checkpoint says (sizes, env, seed, ...).
RESUME_MAY_CHANGE = ("total_timesteps", "torch_threads", "cuda", "track", "wandb_project_name", "wandb_entity",
                     "capture_video", "save_model", "progress_interval", "checkpoint_every", "eval_episodes",
                     "eval_deterministic")  # fmt: skip


class UsageError(Exception):
    """Bad input: one line on stderr, exit code 2, before anything is written."""


class RunError(Exception):
    """A run that cannot go on (a non-finite loss, a failed write): one line on stderr, exit code 1."""


def check_args(args: Args) -> None:
    """Reject bad arguments before any env is built; options that are off (None) or not this script's pass."""
    if args.resume is not None and args.eval_checkpoint is not None:
        raise UsageError("--resume continues training and --eval-checkpoint only evaluates: give one of them")
    positive = ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "torch_threads",
                "eval_episodes", "learning_rate", "clip_coef", "max_grad_norm", "kl_target", "target_kl", "obs_clip",
                "reward_clip")  # fmt: skip
    non_negative = ("ent_coef", "vf_coef", "kl_beta", "progress_interval", "checkpoint_every")
    for name, value in asdict(args).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):  # no NaN or infinity reaches a loss or a timer
            raise UsageError(f"{flag} must be a finite number, got {value}")
        if (name in positive and value is not None and value <= 0) or (name in non_negative and value < 0):
            raise UsageError(f"{flag} must be {'positive' if name in positive else 'non-negative'}, got {value}")
        if name in ("gamma", "gae_lambda", "repeat_action_probability") and value is not None and not 0 <= value <= 1:
            raise UsageError(f"{flag} must be in [0, 1], got {value}")
        if name in ("exp_name", "run_name") and value is not None and (value in ("", ".", "..") or "/" in value):
            raise UsageError(f"{flag} {value!r} must be a name, not a path")  # "/": os.sep, or os.altsep on Windows
    if not 0 <= args.seed <= 2**31 - 1:  # numpy takes seeds below 2**32, and env i gets seed + i
        raise UsageError(f"--seed must be in [0, 2**31 - 1], got {args.seed}")
    if args.adaptive_clip and args.policy_objective != "clip":
        objective = args.policy_objective
        raise UsageError(f"--adaptive-clip adapts the clip range of --policy-objective clip, not of {objective}")
    batch_size = args.num_envs * args.num_steps
    if batch_size % args.num_minibatches != 0:
        raise UsageError(f"--num-minibatches {args.num_minibatches} does not divide the batch of {batch_size} "
                         "(num_envs * num_steps)")  # fmt: skip
    if args.total_timesteps < batch_size:
        raise UsageError(f"--total-timesteps {args.total_timesteps} is less than one batch of {batch_size}")


def check_env(env_id: str) -> None:
    """Reject an unknown env id, or one this script cannot run, naming the script that can."""
    try:
        env = gym.make(env_id)  # "module:EnvName-v0" imports a module that registers the env first
    except gym.error.UnregisteredEnv:
        if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
            raise UsageError(f"{env_id} is an Atari env: use ppo_atari.py") from None
        raise UsageError(f"unknown env id {env_id!r}") from None
    except ImportError as error:
        raise UsageError(f"cannot import the module of env id {env_id!r}: {describe(error)}") from None
    except Exception as error:  # a missing optional dependency, such as box2d or mujoco
        raise UsageError(f"cannot make {env_id}: {describe(error)}") from None
    entry_point, action_space, observation_space = str(env.spec.entry_point), env.action_space, env.observation_space
    env.close()
    if "ale_py" in entry_point:
        raise UsageError(f"{env_id} is an Atari env: use ppo_atari.py")
    if isinstance(action_space, gym.spaces.Discrete):
        raise UsageError(f"{env_id} has discrete actions ({action_space}): use ppo_discrete.py")
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise UsageError(f"{env_id} has a {type(action_space).__name__} action space; this script needs a flat Box")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise UsageError(f"{env_id} observations are {observation_space}, not a flat Box: use ppo_atari.py for pixels")


def resolve_args(args: Args, argv: Sequence[str]) -> tuple:
    """This run's options, checked, the checkpoint to resume (or None) and the run directory; --track: W&B's login."""
    check_args(args)
    checkpoint = None
    if args.resume is not None:  # the checkpoint's options, but those typed in argv, checked again
        checkpoint = load_checkpoint(args.resume)
        args = resume_args(args, checkpoint["args"], argv)
        check_args(args)
    if args.eval_checkpoint is not None:
        return args, None, None
    check_env(args.env_id)
    wandb_mode = os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun")
    if args.track and not (wandb_mode or os.environ.get("WANDB_API_KEY")):
        if not importlib.import_module("wandb").login(prompt=False, verify=False):
            raise UsageError("--track needs a W&B login: run `wandb login`, or set WANDB_MODE=offline to log locally")
    if checkpoint is not None:  # a resumed run goes on in its own directory, wherever that has moved
        return args, checkpoint, os.path.dirname(checkpoint["path"])
    run_name = args.run_name or f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = os.path.join(args.output_dir, run_name)
    if os.path.exists(run_dir):
        raise UsageError(f"{run_dir} already exists; pick another --run-name, or --resume it (nothing was overwritten)")
    return args, checkpoint, run_dir


def resume_args(args: Args, saved: dict, argv: Sequence[str]) -> Args:
    """A resumed run's options: the checkpoint's, but those typed in `argv` that may change (typed at any value)."""
    typed = {token[2:].split("=")[0].replace("-", "_") for token in argv if token.startswith("--")}
    typed |= {name[3:] for name in typed if name.startswith("no_")}  # --no-track types track
    merged = {}
    for name, given in asdict(args).items():
        flag = "--" + name.replace("_", "-")
        if name in ("resume", "eval_checkpoint"):
            continue
        if name not in saved and name not in RESUME_MAY_CHANGE:  # written before this option existed
            raise UsageError(f"the checkpoint predates {flag}; resume it with the version of {SCRIPT}.py that wrote it")
        if name in saved and (name not in typed or given == saved[name]):
            merged[name] = saved[name]
        elif name in RESUME_MAY_CHANGE:  # typed, or newer than the checkpoint (and without effect on results)
            merged[name] = given
        else:
            may_change = ", ".join("--" + n.replace("_", "-") for n in RESUME_MAY_CHANGE)
            raise UsageError(f"{flag} {given} differs from the checkpoint's {saved[name]}; a resumed run keeps it "
                             f"(what may change: {may_change})")  # fmt: skip
    return Args(**merged, resume=args.resume)


def start_tracking(args: Args, run_dir: str, checkpoint: Optional[dict]) -> tuple:
    """Make a new run's directory (removed again if this fails); returns its TensorBoard writer and W&B id (--track)."""
    new_run = checkpoint is None
    try:
        os.makedirs(run_dir, exist_ok=not new_run)  # a resumed run's is there
    except OSError as error:
        raise UsageError(f"cannot create {run_dir}: {error.strerror}") from None
    try:
        wandb_id = None if new_run else checkpoint["training"]["wandb_id"]
        if args.track:
            wandb_id = importlib.import_module("wandb").init(
                project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True, config=asdict(args),
                name=os.path.basename(run_dir), dir=run_dir, save_code=True, id=wandb_id, resume="allow",
            ).id  # fmt: skip
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard drops what an earlier process logged after the checkpoint: no step is logged twice
        writer = SummaryWriter(run_dir, purge_step=None if new_run else checkpoint["training"]["global_step"] + 1)
        if new_run:
            table = "\n".join(f"|{key}|{value}|" for key, value in asdict(args).items())
            writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
    except BaseException as error:
        if new_run:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(error, Exception):
            raise RunError(f"cannot start tracking: {describe(error)}") from error
        raise
    return writer, wandb_id


class TrainingLoop:
    """The training loop's context: console lines, checkpoints, signals; however it ends, envs and handlers close."""

    def __init__(self, args: Args, run_dir: str, writer, envs, checkpoint, num_iterations: int, start_time: float):
        self.args, self.run_dir, self.writer, self.envs, self.signum = args, run_dir, writer, envs, None
        self.num_iterations, self.start_time, self.last_line = num_iterations, start_time, time.time()
        self.last_checkpoint = checkpoint["training"]["iteration"] if checkpoint is not None else None  # resumable

    def __enter__(self) -> "TrainingLoop":
        self.previous_handlers = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum, name = signum, signal.Signals(signum).name
        message = f"{name}: stopping with a checkpoint after this iteration (signal again to stop at once)\n"
        os.write(2, (message + status_line("stop_requested", signal=name) + "\n").encode())  # not print: a handler

    def check_finite(self, stat_means: dict, iteration: int, global_step: int) -> None:
        for name, mean in stat_means.items():
            if not math.isfinite(mean):
                kept = f"the last checkpoint, {self.run_dir}/checkpoint.pt (iteration {self.last_checkpoint}), is kept"
                kept = kept if self.last_checkpoint else "no checkpoint was written (see --checkpoint-every)"
                raise RunError(f"iteration {iteration} (step {global_step:,}): {name} is {mean}; stopped, {kept}")

    def report(self, iteration: int, global_step: int, recent_returns: deque) -> None:
        now, total = time.time(), self.num_iterations * self.args.num_envs * self.args.num_steps
        if now - self.last_line < self.args.progress_interval and iteration != self.num_iterations:
            return
        self.last_line, sps = now, int(global_step / (now - self.start_time))
        recent = f"{np.mean(recent_returns):.1f}" if recent_returns else "n/a"
        eta = (total - global_step) / max(sps, 1)
        elapsed, left = (timedelta(seconds=int(seconds)) for seconds in (now - self.start_time, eta))
        print(f"step {global_step:>9,}/{total:,} ({100 * global_step / total:3.0f}%) | SPS {sps:>6,} | return (last "
              f"{len(recent_returns)}) {recent} | elapsed {elapsed} | left {left}", flush=True)  # fmt: skip

    def checkpoint_due(self, iteration: int) -> bool:
        every = self.args.checkpoint_every
        return self.signum is not None or every > 0 and (iteration % every == 0 or iteration == self.num_iterations)

    def save_checkpoint(self, agent, optimizer, normalizers: dict, minibatch_rng, **training) -> None:
        """Write checkpoint.pt in the run directory: the model, options, statistics and all the loop needs to go on."""
        self.writer.flush()  # the events up to this step reach the disk before the checkpoint that resumes after them
        numpy_rng = np.random.get_state()  # (kind, keys, position, has_gauss, cached_gaussian): keys as a list
        training["rng"] = {
            "python": random.getstate(), "numpy": (numpy_rng[0], numpy_rng[1].tolist(), *numpy_rng[2:]),
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "minibatch": minibatch_rng.bit_generator.state,
        }  # fmt: skip
        training.update(recent_returns=list(training["recent_returns"]), optimizer=optimizer.state_dict())
        training["envs"] = env_state(self.envs)
        extra = {"global_step": training["global_step"], "training": training}
        write_atomically(os.path.join(self.run_dir, "checkpoint.pt"), agent, self.args, normalizers, extra)
        self.last_checkpoint = training["iteration"]

    def exit_if_requested(self, iteration: int, global_step: int) -> None:
        if self.signum is not None:
            name, resume = signal.Signals(self.signum).name, f"python {SCRIPT}.py --resume {self.run_dir}"
            print(f"stopped by {name} after iteration {iteration}/{self.num_iterations} (step {global_step:,}), "
                  f"checkpoint {self.run_dir}/checkpoint.pt; resume with: {resume}", file=sys.stderr)  # fmt: skip
            stopped = dict(iteration=iteration, num_iterations=self.num_iterations, global_step=global_step)
            print(status_line("stopped", signal=name, **stopped), file=sys.stderr, flush=True)
            raise SystemExit(128 + self.signum)

    def __exit__(self, exc_type, exc, traceback) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)
        self.envs.close()
        if exc_type is KeyboardInterrupt:
            resume = f"; resume from iteration {self.last_checkpoint} with: python {SCRIPT}.py --resume {self.run_dir}"
            print(f"interrupted; TensorBoard events so far are in {self.run_dir}"
                  + (resume if self.last_checkpoint else ""), file=sys.stderr)  # fmt: skip
        if exc_type is not None:
            self.writer.close()

    def finish(self, global_step: int, recent_returns: deque, agent, normalizers: dict, device) -> None:
        """The summary line; with --save-model, model.pt and its evaluation (eval/episodic_return); then closing."""
        elapsed, args = time.time() - self.start_time, self.args
        recent = f"{np.mean(recent_returns):.2f} +- {np.std(recent_returns):.2f}" if recent_returns else "n/a"
        print(f"done: {global_step:,} steps in {timedelta(seconds=int(elapsed))} ({int(global_step / elapsed):,} SPS) "
              f"| return over the last {len(recent_returns)} episodes {recent} | run {self.run_dir}")  # fmt: skip
        print(status_line("done", global_step=global_step, seconds=elapsed, steps_per_second=global_step / elapsed))
        if args.save_model:
            model_path = os.path.join(self.run_dir, "model.pt")
            write_atomically(model_path, agent, args, normalizers, {"global_step": global_step})
            model = load_checkpoint(model_path, "model.pt")  # read back as --eval-checkpoint reads it
            returns = evaluate(model, args.eval_episodes, args.eval_deterministic, args.seed + 10**6, device)
            for episode_index, episodic_return in enumerate(returns):
                self.writer.add_scalar("eval/episodic_return", episodic_return, episode_index)
            print(f"saved {model_path}; evaluation: mean return {np.mean(returns):.2f} +- {np.std(returns):.2f} "
                  f"over {len(returns)} episodes")  # fmt: skip
        self.writer.close()
        if args.track:
            sys.modules["wandb"].finish()


def write_atomically(path: str, agent: nn.Module, args: Args, normalizers: dict, extra: dict) -> None:
    """Write the model, options, statistics and `extra` atomically (a temporary file, renamed): never half a file."""
    payload = {"format": CHECKPOINT_FORMAT, "script": SCRIPT, "env_id": args.env_id, "args": asdict(args), **extra}
    payload.update({name: None if stats is None else stats.state_dict() for name, stats in normalizers.items()})
    payload["model"] = agent.state_dict()
    try:
        torch.save(payload, f"{path}.tmp")
        os.replace(f"{path}.tmp", path)
    except OSError as error:
        pathlib.Path(f"{path}.tmp").unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {error.strerror or error}") from None


def load_checkpoint(path: str, file_name: str = "checkpoint.pt") -> dict:
    """A checkpoint.pt to resume or a model.pt (a directory: its `file_name`), loaded safely, checked to be ours."""
    path = os.path.join(path, file_name) if os.path.isdir(path) else path
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path}")
    try:  # torch.load does not check the zip entries' CRC-32: damage inside a tensor would load silently
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        payload = None if damaged else torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UsageError(f"cannot read checkpoint {path}: {describe(error)}") from None
    if damaged is not None:
        raise UsageError(f"cannot read checkpoint {path}: {damaged} is damaged (CRC mismatch)")
    if not isinstance(payload, dict) or "script" not in payload or "format" not in payload:
        raise UsageError(f"{path} is not a checkpoint of this project")
    if payload["script"] != SCRIPT:
        raise UsageError(f"{path} was written by {payload['script']}.py, not {SCRIPT}.py")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise UsageError(f"{path} has checkpoint format {payload['format']}, this script reads {CHECKPOINT_FORMAT}")
    if file_name == "checkpoint.pt" and "training" not in payload:
        raise UsageError(f"{path} holds a trained model but no training state; resume a checkpoint.pt")
    return payload | {"path": path}


def resume_run(checkpoint, agent, optimizer, normalizers, envs, minibatch_rng, next_obs, num_iterations: int):
    """Put back what TrainingLoop.save_checkpoint wrote and say so; returns the observation the run goes on from."""
    training, rng = checkpoint["training"], checkpoint["training"]["rng"]
    agent.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(training["optimizer"])
    for name, stats in normalizers.items():
        if stats is not None:
            stats.load_state_dict(checkpoint[name])
    if training["envs"] is not None:
        env_state(envs, training["envs"])
        next_obs = training["next_obs"].to(next_obs.device)
    else:
        print(f"note: {checkpoint['env_id']} keeps its state where a checkpoint cannot read it; "
              "the resumed run starts new episodes", file=sys.stderr)  # fmt: skip
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    minibatch_rng.bit_generator.state = rng["minibatch"]
    iteration, global_step = training["iteration"], training["global_step"]
    print(f"resumed {os.path.dirname(checkpoint['path'])} after iteration {iteration}/{num_iterations} "
          f"(step {global_step:,})")  # fmt: skip
    print(status_line("resumed", iteration=iteration, num_iterations=num_iterations, global_step=global_step))
    return next_obs


class ResumableEnv(gym.Wrapper):
    """The outermost wrapper of every env; its `resume_state` is what a checkpoint keeps of the env (see env_state)."""

    @property
    def resume_state(self) -> Optional[dict]:
        """A MuJoCo simulation's integration state (time, qpos, qvel, actuators, warm start) or a classic-control env's
        physics (`state`), its RNG and the wrappers' counters; None where they cannot be read (Box2D envs)."""
        env, mujoco = self.env.unwrapped, sys.modules.get("mujoco")
        if mujoco is not None and isinstance(getattr(env, "data", None), mujoco.MjData):
            physics = np.empty(mujoco.mj_stateSize(env.model, mujoco.mjtState.mjSTATE_INTEGRATION))
            mujoco.mj_getState(env.model, env.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
        elif hasattr(env, "state"):
            physics = np.array(env.state)
        else:
            return None
        return {"physics": physics, "rng": env.np_random.bit_generator.state} | episode_counters(self)

    @resume_state.setter
    def resume_state(self, state: dict) -> None:
        env, mujoco = self.env.unwrapped, sys.modules.get("mujoco")
        if mujoco is not None and isinstance(getattr(env, "data", None), mujoco.MjData):
            mujoco.mj_setState(env.model, env.data, state["physics"], mujoco.mjtState.mjSTATE_INTEGRATION)
        else:
            env.state = state["physics"].copy()
        env.np_random.bit_generator.state = state["rng"]
        episode_counters(self, state)


def env_state(envs: gym.vector.VectorEnv, states: Optional[list] = None) -> Optional[list]:
    """Every env's resume_state, arrays as tensors (None if one is unreadable), after putting back `states` if given."""
    if states is not None:
        numpy_states = [{k: v.numpy() if torch.is_tensor(v) else v for k, v in state.items()} for state in states]
        envs.set_attr("resume_state", numpy_states)
    states = envs.get_attr("resume_state")  # numpy to and from the envs: an AsyncVectorEnv worker's tensor can deadlock
    if any(state is None for state in states):
        return None
    return [{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()} for state in states]


def episode_counters(env: gym.Env, state: Optional[dict] = None) -> dict:
    """The wrappers' counters (put back first from `state`, if given): time-limit steps, episode return and length."""
    time_limit = find_wrapper(env, gym.wrappers.TimeLimit)  # its step count is private; none in ALE's v5 ids
    statistics = find_wrapper(env, gym.wrappers.RecordEpisodeStatistics)
    if state is not None:
        if time_limit is not None:
            time_limit._elapsed_steps = state["elapsed_steps"]
        statistics.episode_returns, statistics.episode_lengths = state["episode_return"], state["episode_length"]
    episode = {"episode_return": float(statistics.episode_returns), "episode_length": int(statistics.episode_lengths)}
    return {"elapsed_steps": getattr(time_limit, "_elapsed_steps", None)} | episode


def find_wrapper(env: gym.Env, kind: type) -> Optional[gym.Wrapper]:
    """The wrapper of type `kind` in env's stack of wrappers, or None."""
    while isinstance(env, gym.Wrapper) and not isinstance(env, kind):
        env = env.env
    return env if isinstance(env, kind) else None


def seed_everything(seed: int, torch_deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic


def evaluate_checkpoint(args: Args, device: torch.device) -> None:
    """--eval-checkpoint: play --eval-episodes episodes with a saved model and print their mean return."""
    payload = load_checkpoint(args.eval_checkpoint, "model.pt")
    check_env(payload["env_id"])
    video_dir = os.path.join(os.path.dirname(payload["path"]), "eval-videos") if args.capture_video else None
    returns = evaluate(payload, args.eval_episodes, args.eval_deterministic, args.seed, device, video_dir)
    actions = "greedy" if args.eval_deterministic else "sampled"
    print(f"{payload['env_id']}: mean return {np.mean(returns):.2f} +- {np.std(returns):.2f} over {len(returns)} "
          f"episodes ({actions} actions)" + (f"; videos in {video_dir}" if video_dir else ""))  # fmt: skip


def evaluate(payload: dict, episodes: int, deterministic: bool, seed: int, device, video_dir=None) -> list:
    """The returns of `episodes` full episodes of a saved agent; videos of episodes 0, 1, 8, 27, ... in video_dir.
    Observations are normalized with the agent's saved statistics, frozen: fresh ones would show it other inputs."""
    env_fns = [make_env(payload["env_id"], 0, video_dir is not None, video_dir or "")]
    envs = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs_dim, action_dim = np.prod(envs.single_observation_space.shape), np.prod(envs.single_action_space.shape)
    agent = Agent(int(obs_dim), int(action_dim)).to(device)
    agent.load_state_dict(payload["model"])
    obs_rms = None if payload["obs_rms"] is None else RunningMeanStd(envs.single_observation_space.shape)
    if obs_rms is not None:  # the statistics the agent was trained with, frozen
        obs_rms.load_state_dict(payload["obs_rms"])
    torch.manual_seed(seed)  # sampled actions repeat with the seed, whatever ran before in this process
    obs, _ = envs.reset(seed=seed)
    episodic_returns = []
    while len(episodic_returns) < episodes:
        agent_obs = normalize_obs(obs_rms, obs, payload["args"]["obs_clip"], update=False, device=device)
        with torch.inference_mode():
            action = agent.sample_action(agent_obs, deterministic=deterministic)
        obs, _, _, _, infos = envs.step(np.clip(action.cpu().numpy(), envs.action_space.low, envs.action_space.high))
        if "final_info" in infos and "episode" in infos["final_info"]:
            episodic_returns.extend(infos["final_info"]["episode"]["r"][infos["final_info"]["_episode"]].tolist())
    envs.close()
    return episodic_returns[:episodes]


def status_line(event: str, **fields) -> str:
    """PPO_STATUS and {"event": event, **fields} as JSON: a line for tools (benchmark/run_one.py), not people."""
    return "PPO_STATUS " + json.dumps({"event": event, **fields})


def describe(error: BaseException) -> str:
    """ "TypeName: first line of its message", for one-line error reports."""
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"


def flatten_parameters(agent: nn.Module) -> torch.Tensor:
    """For speed alone, one tensor for Adam and clipping: parameters and gradients (never set None) as views of it."""
    parameters = list(agent.parameters())
    flat_params = torch.zeros(sum(parameter.numel() for parameter in parameters), device=parameters[0].device)
    flat_params.grad = torch.zeros_like(flat_params)
    offset = 0
    for parameter in parameters:
        parameter.data = flat_params.as_strided(parameter.shape, parameter.stride(), offset).copy_(parameter.detach())
        parameter.grad = flat_params.grad.as_strided(parameter.shape, parameter.stride(), offset)
        offset += parameter.numel()
    return flat_params


if __name__ == "__main__":
    try:
        main(tyro.cli(Args), sys.argv[1:])
    except (UsageError, RunError) as error:
        print(f"{SCRIPT}.py: error: {error}", file=sys.stderr)
        sys.exit(2 if isinstance(error, UsageError) else 1)
    except KeyboardInterrupt:
        sys.exit(130)
