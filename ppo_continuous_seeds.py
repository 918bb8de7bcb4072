"""PPO-Clip for continuous actions (Box) and vector observations: many seeds trained in one process, batched.

Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347) with the implementation details
that published results depend on, each named where it happens. Equation numbers refer to the PPO paper.
ppo_continuous.py with a seed axis (`diff` the two): each seed is that script at that seed (its own weights, env
seeds, statistics, minibatches, gradient clipping, Adam state, beta and epsilon), the seeds' networks stacked and
run as batched matmuls, so N seeds cost little more than one where torch's per-op cost dominates (small MLPs).
The PPO functions it shares with its parent (GAE, the losses) take leading batch axes: here, the seed axis.
Each seed writes the run directory ppo_continuous.py would write; the one checkpoint, for all seeds, is in the first.

    python ppo_continuous_seeds.py --env-id Pendulum-v1 --seeds 1 2 3 4 5 6 7 8
    python ppo_continuous_seeds.py --eval-checkpoint runs/<run>/model.pt   # one seed's model (ppo_continuous.py's)
    python ppo_continuous_seeds.py --checkpoint-every 10      # then, after Ctrl-C, SIGTERM or a crash:
    python ppo_continuous_seeds.py --resume runs/<first seed's run>     # goes on exactly, every seed
"""

import copy
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
import warnings
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

SCRIPT = "ppo_continuous_seeds"
PARENT = "ppo_continuous"  # the single-seed script: each seed's model.pt is one of its models
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
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    """the seeds, one independent agent each (each as ppo_continuous.py --seed k: torch, numpy and its envs)"""
    torch_deterministic: bool = True
    """make cuDNN deterministic (`torch.backends.cudnn.deterministic`)"""
    cuda: bool = True
    """use CUDA when it is available"""
    torch_threads: int = 1
    """torch CPU threads; 1 is fastest for small MLPs, and results repeat exactly only at a fixed count"""
    output_dir: str = "runs"
    """TensorBoard events, saved model and evaluation results go to {output_dir}/{run_name}"""
    run_name: Optional[str] = None
    """run name per seed, {seed} replaced by the seed; default {env_id}__{exp_name}__{seed}__{unix time}"""
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


class BatchedAgent(nn.Module):
    """The seeds' Agents as one module: each parameter of Agent stacked over a leading seed axis, every Linear layer
    one batched matmul over the seeds (torch.baddbmm). Inputs and outputs are (num_seeds, ..., features)."""

    def __init__(self, agents: list):
        super().__init__()
        self.num_seeds = len(agents)
        self.critic = stack_linear_layers([agent.critic for agent in agents])
        self.actor = stack_linear_layers([agent.actor for agent in agents])
        self.actor_logstd = nn.Parameter(torch.stack([agent.actor_logstd.detach() for agent in agents]))  # (seeds, A)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return batched_mlp(self.critic, x).squeeze(-1)

    def sample_action(self, x: torch.Tensor, generators: list, deterministic: bool = False) -> torch.Tensor:
        """a ~ pi(.|x) per seed, the noise of seed k from its own generator, as ppo_continuous.py draws it at seed k."""
        mean = batched_mlp(self.actor, x)  # (num_seeds, batch, action_dim)
        if deterministic:
            return mean
        noise = torch.stack([torch.randn(mean.shape[1:], generator=generator) for generator in generators])
        return mean + seed_axis(self.actor_logstd, mean).exp() * noise.to(mean.device)

    def get_action(self, x: torch.Tensor, action: torch.Tensor):
        """Returns action, log pi(action|x) and pi(.|x)'s parameters, mean and log std (num_seeds, batch, 2, A)."""
        mean = batched_mlp(self.actor, x)  # (num_seeds, batch, action_dim)
        log_std = seed_axis(self.actor_logstd, mean).expand_as(mean)
        z = (action - mean) / log_std.exp()  # the standardized action
        # log N(a; mean, std^2) = -z^2 / 2 - log std - log(2 pi) / 2, z = (a - mean) / std
        logprob = (-0.5 * z**2 - log_std - HALF_LOG_2PI).sum(dim=-1)
        return action, logprob, torch.stack((mean, log_std), dim=-2)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor):
        """Returns action, log pi(action|x), entropy of pi(.|x), V(x) and pi's parameters: what the update needs."""
        action, logprob, params = self.get_action(x, action)
        entropy = (0.5 + HALF_LOG_2PI + seed_axis(self.actor_logstd, action)).sum(dim=-1)  # log(std sqrt(2 pi e))
        return action, logprob, entropy.expand_as(logprob), self.get_value(x), params

    exact_kl = staticmethod(Agent.exact_kl)

    def unstack(self, seed_index: int, agent: Agent) -> Agent:
        """Seed seed_index's parameters copied into `agent`, an Agent of ppo_continuous.py (for model.pt)."""
        with torch.no_grad():
            for sequential, stacked in ((agent.critic, self.critic), (agent.actor, self.actor)):
                linears = [layer for layer in sequential if isinstance(layer, nn.Linear)]
                for layer, weight, bias in zip(linears, stacked[0::2], stacked[1::2]):
                    layer.weight.copy_(weight[seed_index].T)
                    layer.bias.copy_(bias[seed_index])
            agent.actor_logstd.copy_(self.actor_logstd[seed_index])
        return agent


def stack_linear_layers(sequentials: list) -> nn.ParameterList:
    """The Linear layers of one nn.Sequential per seed as [W, b, W, b, ...], stacked over the seeds: W (seeds, in, out)
    (nn.Linear's (out, in) transposed, for x @ W), b (seeds, out)."""
    params = []
    for layers in zip(*sequentials):
        if isinstance(layers[0], nn.Linear):
            params.append(nn.Parameter(torch.stack([layer.weight.detach().T for layer in layers]).contiguous()))
            params.append(nn.Parameter(torch.stack([layer.bias.detach() for layer in layers])))
    return nn.ParameterList(params)


def batched_mlp(params: nn.ParameterList, x: torch.Tensor) -> torch.Tensor:
    """The tanh MLP of stacked layers [W, b, ...] on x (num_seeds, ..., in): one batched matmul per layer for all
    seeds, b + x @ W, with tanh between layers. Returns (num_seeds, ..., out)."""
    shape = x.shape
    x = x.reshape(shape[0], -1, shape[-1])  # (num_seeds, rows, in)
    for layer in range(0, len(params), 2):
        x = torch.baddbmm(params[layer + 1].unsqueeze(1), x, params[layer])
        x = torch.tanh(x) if layer + 2 < len(params) else x
    return x.reshape(shape[:-1] + (-1,))


def by_env(env_array: np.ndarray, num_seeds: int) -> np.ndarray:
    """An array from the vector env, (num_seeds * num_envs, ...) in seed-major order, as (num_envs, num_seeds, ...):
    the running statistics reduce over axis 0 and keep one entry per seed."""
    return env_array.reshape((num_seeds, -1) + env_array.shape[1:]).swapaxes(0, 1)


def seed_axis(per_seed: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """per_seed (num_seeds, ...) shaped to broadcast against `like` (num_seeds, ..., ...): ones inserted after the
    seed axis. Hyperparameters adapted per seed (beta, epsilon) and the log stds broadcast this way."""
    return per_seed.reshape(per_seed.shape[:1] + (1,) * (like.dim() - per_seed.dim()) + per_seed.shape[1:])


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


def update_statistics(minibatch_stats: list, minibatch_logratios: list, minibatch_active: list, clip_coef) -> dict:
    """Per seed, means over the minibatches of an update that seed trained on (all of them unless its KL early stop
    came first): what each recorded, the KL estimates k1, k3 and the clip fraction. Values are (num_seeds,) lists."""
    with torch.no_grad():
        active = torch.stack(minibatch_active)  # (num_updates, num_seeds)
        count = active.sum(dim=0)

        def mean_over_active(per_minibatch):  # (num_updates, num_seeds) -> (num_seeds,)
            return torch.where(active, per_minibatch, 0.0).sum(dim=0) / count

        stat_means = {name: mean_over_active(torch.stack([stats[name] for stats in minibatch_stats]))
            for name in minibatch_stats[0]}  # fmt: skip
        logratios = torch.stack(minibatch_logratios)  # (num_updates, num_seeds, minibatch_size)
        old_approx_kl, approx_kl = kl_estimators(logratios)  # (num_updates, num_seeds) each
        clipfrac = ((logratios.exp() - 1.0).abs() > clip_coef.unsqueeze(-1)).float().mean(dim=-1)  # current epsilon
        for name, per_minibatch in (("old_approx_kl", old_approx_kl), ("approx_kl", approx_kl), ("clipfrac", clipfrac)):
            stat_means[name] = mean_over_active(per_minibatch)
    return {name: mean.tolist() for name, mean in stat_means.items()}


class SeedAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba 2015, as torch.optim.Adam) over parameters (num_seeds, ...) with a step count per seed:
    step(active) moves only the active seeds, so one that stopped early (target_kl) keeps its parameters, its moments
    and its bias correction, exactly as its own single-seed run. Adam is elementwise: otherwise it is torch's."""

    def __init__(self, params, lr: float, eps: float, betas: tuple = (0.9, 0.999)):
        super().__init__(params, {"lr": lr, "eps": eps, "betas": betas})

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        for group in self.param_groups:
            (beta1, beta2), lr, eps = group["betas"], group["lr"], group["eps"]
            for param in group["params"]:
                state = self.state[param]
                if not state:
                    state["seed_steps"] = torch.zeros(param.shape[0], device=param.device)  # not "step": torch's
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(param), torch.zeros_like(param)
                state["seed_steps"] += active.float()
                step = seed_axis(state["seed_steps"].clamp(min=1.0), param)  # a seed not stepped yet: any count, masked
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                if active.all():  # every seed steps (always without target_kl): in place, fewer ops
                    exp_avg.lerp_(param.grad, 1.0 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(param.grad, param.grad, value=1.0 - beta2)
                    denom = (exp_avg_sq.sqrt() / (1.0 - beta2**step).sqrt()).add_(eps)
                    param.sub_(exp_avg / denom * (lr / (1.0 - beta1**step)))
                    continue
                mask = seed_axis(active, param)  # the seeds that step; the others keep parameters and moments
                exp_avg = torch.where(mask, exp_avg.lerp(param.grad, 1.0 - beta1), exp_avg)
                exp_avg_sq = torch.where(mask, beta2 * exp_avg_sq + (1.0 - beta2) * param.grad**2, exp_avg_sq)
                denom = exp_avg_sq.sqrt() / (1.0 - beta2**step).sqrt() + eps
                param.sub_(torch.where(mask, exp_avg / denom * (lr / (1.0 - beta1**step)), 0.0))
                state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq


def main(args: Args, argv: Sequence[str] = ()) -> None:
    args, checkpoint, run_dirs = resolve_args(args, argv)  # on --resume: the checkpoint's options, but those typed
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    if args.eval_checkpoint is not None:
        return evaluate_checkpoint(args, device)
    batch_size = args.num_envs * args.num_steps  # N * T transitions per iteration, per seed
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size
    num_seeds = len(args.seeds)

    # --- Seeding ---
    seed_everything(args.seeds[0], args.torch_deterministic)  # python, numpy and torch (per seed again below)
    minibatch_rngs = [np.random.default_rng(seed) for seed in args.seeds]  # shuffle each seed's minibatches

    # --- Environments ---
    # SAME_STEP autoreset: a step that ends an episode returns the next episode's first observation and puts
    # the final one in infos["final_obs"]. Every stored transition is real (the default NEXT_STEP mode would
    # spend the following step on a reset whose action is ignored: a fake transition in the batch).
    video_dir = f"videos/{os.path.basename(run_dirs[0])}"
    env_fns = [make_env(args.env_id, i, args.capture_video, video_dir) for i in range(num_seeds * args.num_envs)]
    envs = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)  # seed-major order
    obs_shape, action_shape = envs.single_observation_space.shape, envs.single_action_space.shape
    agents, action_generators = [], []  # seed k's Agent made as ppo_continuous.py --seed k makes it, then stacked
    for seed in args.seeds:
        seed_everything(seed, args.torch_deterministic)
        agents.append(Agent(int(np.prod(obs_shape)), int(np.prod(action_shape)), args.log_std_init))
        action_generators.append(torch.Generator().set_state(torch.get_rng_state()))  # its action noise goes on
    agent = BatchedAgent(agents).to(device)  # from torch's generator where that script's does
    rngs = {"minibatch": minibatch_rngs, "actions": action_generators}  # the seeds' RNGs, for checkpoints
    flat_params = flatten_parameters(agent)  # (num_seeds, num_params), for speed alone: one tensor for Adam, clipping
    optimizer = SeedAdam([flat_params], lr=args.learning_rate, eps=1e-5)  # Adam eps 1e-5, not 1e-8; a step per seed
    # Observation normalization and reward scaling, per seed: the statistics reduce over axis 0 of (num_envs, seeds)
    obs_rms = RunningMeanStd((num_seeds,) + obs_shape) if args.norm_obs else None
    reward_scaler = RewardScaler((args.num_envs, num_seeds), args.gamma, args.reward_clip) if args.norm_reward else None
    normalizers = {"obs_rms": obs_rms, "reward_scaler": reward_scaler}  # running statistics a checkpoint keeps

    # --- Storage: fixed-size rollout buffers, a leading seed axis on each ---
    obs = torch.zeros((num_seeds, args.num_steps, args.num_envs) + obs_shape, device=device)
    actions = torch.zeros((num_seeds, args.num_steps, args.num_envs) + action_shape, device=device)  # unclipped
    logprobs = torch.zeros((num_seeds, args.num_steps, args.num_envs), device=device)
    # the rollout policy's parameters, mean and log std (num_seeds, num_steps, num_envs, 2, action_dim): for the KL
    policy_params = torch.zeros((num_seeds, args.num_steps, args.num_envs, 2) + action_shape, device=device)
    # For speed alone (less per-call overhead than a tensor store), env returns stay in numpy until the rollout ends
    rewards = np.zeros((num_seeds, args.num_steps, args.num_envs), dtype=np.float32)
    dones = np.zeros((num_seeds, args.num_steps, args.num_envs), dtype=bool)
    values = torch.zeros((num_seeds, args.num_steps, args.num_envs), device=device)
    final_values = torch.zeros((num_seeds, args.num_steps, args.num_envs), device=device)  # V(final obs), truncated
    env_obs, _ = envs.reset(seed=[seed + i for seed in args.seeds for i in range(args.num_envs)])  # env i: seed + i
    next_obs = normalize_obs(obs_rms, by_env(env_obs, num_seeds), args.obs_clip, True, device).transpose(0, 1)

    # --- Resume: everything the checkpoint holds goes back, so the run goes on as if it had never stopped ---
    global_step, start_iteration = 0, 0  # steps per seed: each seed's run counts its own, as ppo_continuous.py
    recent_returns = [deque(maxlen=100) for _ in args.seeds]  # recent returns: for the progress line
    kl_beta = [args.kl_beta] * num_seeds  # KL penalty coefficient (Eq. 8) per seed: adapted under kl-adaptive
    clip_coef = [args.clip_coef] * num_seeds  # clip epsilon (Eq. 7) per seed: adapted under adaptive_clip
    start_time = time.time()
    if checkpoint is not None:
        training = checkpoint["training"]
        next_obs = resume_run(checkpoint, agent, optimizer, normalizers, envs, rngs, next_obs, num_iterations)
        start_iteration, global_step = training["iteration"], training["global_step"]
        kl_beta, clip_coef = training["kl_beta"], training["clip_coef"]
        for seed_returns, saved in zip(recent_returns, training["recent_returns"]):
            seed_returns.extend(saved)
        start_time -= training["elapsed"]

    # --- Tracking: TensorBoard always, W&B on request; one run per seed ---
    writers, wandb_ids = start_tracking(args, run_dirs, checkpoint)

    # SIGINT or SIGTERM: stop after this iteration, with a checkpoint (a second one: at once)
    with TrainingLoop(args, run_dirs, writers, envs, checkpoint, num_iterations, start_time) as loop:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            if args.anneal_lr:  # linear learning-rate annealing from learning_rate to 0
                optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate

            # ---------------- Rollout: num_steps steps in each of num_envs envs, per seed ----------------
            final_values.zero_()
            with torch.inference_mode():  # no autograd while acting: entered once per rollout, not once per step
                for step in range(args.num_steps):
                    global_step += args.num_envs
                    obs[:, step] = next_obs
                    action = agent.sample_action(next_obs, action_generators)  # (num_seeds, num_envs, action_dim)
                    actions[:, step] = action
                    # The env gets the action clipped to its bounds; the unclipped sample is stored and scored (in r_t)
                    env_action = action.cpu().numpy().reshape((-1,) + action_shape)  # seed-major, as the envs
                    clipped_action = np.clip(env_action, envs.action_space.low, envs.action_space.high)
                    env_obs, reward, terminations, truncations, infos = envs.step(clipped_action)
                    reward, done = by_env(reward, num_seeds), by_env(terminations | truncations, num_seeds)
                    reward = reward_scaler(reward, done) if reward_scaler is not None else reward  # per seed
                    rewards[:, step] = reward.T  # (num_envs, num_seeds) -> (num_seeds, num_envs)
                    dones[:, step] = (terminations | truncations).reshape(num_seeds, args.num_envs)
                    next_obs = normalize_obs(obs_rms, by_env(env_obs, num_seeds), args.obs_clip, True, device)
                    next_obs = next_obs.transpose(0, 1)  # (num_seeds, num_envs, obs_dim)
                    if "final_obs" in infos:
                        # Time-limit truncation is not termination: bootstrap from V(final observation), normalized
                        # as the critic's inputs (Pendulum, only ever truncated, fails without it: benchmark/evidence)
                        truncated_only = truncations & ~terminations
                        if truncated_only.any():
                            final_obs = env_obs.copy()  # the envs that did not end: any observation, unused
                            final_obs[truncated_only] = np.stack(infos["final_obs"][truncated_only])
                            final_obs = by_env(final_obs, num_seeds)
                            final_obs = normalize_obs(obs_rms, final_obs, args.obs_clip, False, device).transpose(0, 1)
                            truncated_envs = torch.as_tensor(truncated_only.reshape(num_seeds, -1), device=device)
                            final_values[:, step] = torch.where(truncated_envs, agent.get_value(final_obs), 0.0)
                        if "episode" in infos["final_info"]:
                            episode, finished = infos["final_info"]["episode"], infos["final_info"]["_episode"]
                            for env_index in np.flatnonzero(finished):
                                writer = writers[env_index // args.num_envs]  # the seed's run
                                recent_returns[env_index // args.num_envs].append(float(episode["r"][env_index]))
                                writer.add_scalar("charts/episodic_return", episode["r"][env_index], global_step)
                                writer.add_scalar("charts/episodic_length", episode["l"][env_index], global_step)

                # V(s_t), log pi(a_t|s_t) and pi(.|s_t) of the whole rollout in one pass each (the policy is unchanged)
                values[:] = agent.get_value(obs)  # (num_seeds, num_steps, num_envs)
                _, logprobs[:], policy_params[:] = agent.get_action(obs, actions)

            # ---------------- Advantages: GAE over the rollout, each seed's envs independent ----------------
            with torch.inference_mode():
                next_value = agent.get_value(next_obs)
            advantages, returns = compute_gae(
                rewards, values, dones, final_values, next_value, args.gamma, args.gae_lambda
            )

            # Flatten the batch per seed: (num_seeds, num_steps, num_envs, ...) -> (num_seeds, batch_size, ...)
            b_obs = obs.reshape((num_seeds, -1) + obs_shape)
            b_actions = actions.reshape((num_seeds, -1) + action_shape)
            b_logprobs = logprobs.reshape(num_seeds, -1)
            b_policy_params = policy_params.reshape((num_seeds, batch_size) + policy_params.shape[3:])
            b_advantages = advantages.reshape(num_seeds, -1)
            b_returns = returns.reshape(num_seeds, -1)
            b_values = values.reshape(num_seeds, -1)

            # ---------------- Update: update_epochs epochs of shuffled minibatches, each seed its own ----------------
            minibatch_stats, minibatch_logratios = [], []  # per minibatch: its losses and diagnostics; its log r_t
            minibatch_active = []  # per minibatch: the seeds that trained on it (all, until a KL early stop)
            active = torch.ones(num_seeds, dtype=torch.bool, device=device)
            seeds = torch.arange(num_seeds, device=device).unsqueeze(1)  # (num_seeds, 1): indexes with mb_inds
            kl_betas, clip_coefs = torch.tensor(kl_beta, device=device), torch.tensor(clip_coef, device=device)
            for epoch in range(args.update_epochs):
                # each seed's own shuffle; a seed whose KL early stop came draws no more from its rng
                permutations = [
                    rng.permutation(batch_size) if on else np.arange(batch_size)
                    for rng, on in zip(minibatch_rngs, active.tolist())
                ]
                batch_indices = torch.as_tensor(np.stack(permutations), device=device)  # (num_seeds, batch_size)
                for start in range(0, batch_size, minibatch_size):
                    mb_inds = batch_indices[:, start : start + minibatch_size]  # (num_seeds, minibatch_size)
                    _, newlogprob, entropy, newvalue, new_policy_params = agent.get_action_and_value(
                        b_obs[seeds, mb_inds], b_actions[seeds, mb_inds]
                    )
                    logratio = newlogprob - b_logprobs[seeds, mb_inds]
                    ratio = logratio.exp()  # probability ratio r_t(theta), Eq. 6
                    exact_kl = agent.exact_kl(b_policy_params[seeds, mb_inds], new_policy_params)  # KL[pi_old, pi]

                    mb_advantages = b_advantages[seeds, mb_inds]
                    if args.norm_adv:  # per-minibatch advantage normalization, per seed
                        mean, std = mb_advantages.mean(dim=-1, keepdim=True), mb_advantages.std(dim=-1, keepdim=True)
                        mb_advantages = (mb_advantages - mean) / (std + 1e-8)
                    eps = clip_coefs.unsqueeze(1)  # (num_seeds, 1)
                    if args.policy_objective == "clip":
                        pg_loss = clipped_surrogate_loss(ratio, mb_advantages, eps)  # clipped surrogate, Eq. 7
                    elif args.policy_objective == "none":  # unclipped surrogate L^CPI, Eq. 6: no trust region
                        pg_loss = surrogate_loss(ratio, mb_advantages)
                    else:  # kl-adaptive, kl-fixed: KL-penalized surrogate, Eq. 8
                        pg_loss = kl_penalty_loss(ratio, mb_advantages, exact_kl, kl_betas)
                    # value loss L^VF (Eq. 9), clipped if clip_vloss, with the current epsilon whatever the objective
                    mb_values, mb_returns = b_values[seeds, mb_inds], b_returns[seeds, mb_inds]
                    v_loss = value_loss(newvalue, mb_values, mb_returns, eps, args.clip_vloss)
                    entropy_loss = entropy.mean(dim=-1)  # entropy bonus S, Eq. 9
                    entropy_term = args.ent_coef * entropy_loss if args.ent_coef > 0 else 0.0  # at 0: not in the graph
                    loss = pg_loss - entropy_term + args.vf_coef * v_loss  # combined objective, Eq. 9 (negated)

                    flat_params.grad.zero_()  # zeroed in place, not set to None: the agent's gradients are views of it
                    loss.sum().backward()  # the seeds share no parameter: each gets the gradient of its own loss
                    # Global gradient-norm clipping per seed, clip_grad_norm_ written out
                    grad_norm = torch.linalg.vector_norm(flat_params.grad, dim=1)  # (num_seeds,), before clipping
                    flat_params.grad.mul_(torch.clamp(args.max_grad_norm / (grad_norm + 1e-6), max=1.0).unsqueeze(1))
                    optimizer.step(active)  # a seed stopped by its KL early stop takes no step
                    minibatch_stats.append({
                        "policy_loss": pg_loss.detach(), "value_loss": v_loss.detach(),
                        "entropy": entropy_loss.detach(),
                        "exact_kl": exact_kl.detach().mean(dim=-1), "grad_norm": grad_norm,
                    })  # fmt: skip
                    minibatch_logratios.append(logratio.detach())
                    minibatch_active.append(active.clone())
                    if args.target_kl is not None:  # KL early stop, per minibatch, on the k3 estimate, per seed
                        active &= kl_estimators(logratio.detach())[1] <= args.target_kl
                        if not active.any():
                            break
                if not active.any():
                    break

            # Diagnostics: means over every minibatch of the update, not the last minibatch's values; per seed
            stat_means = update_statistics(minibatch_stats, minibatch_logratios, minibatch_active, clip_coefs)
            loop.check_finite(stat_means, iteration, global_step)  # before a NaN reaches a checkpoint

            # Adapt beta (adaptive KL penalty, Section 4) or epsilon for the next update from d, the exact KL of this
            # update: the mean of its minibatches' KLs, each taken before that minibatch's step (the paper's: after)
            if args.policy_objective == "kl-adaptive":
                kl_beta = [update_kl_beta(b, kl, args.kl_target) for b, kl in zip(kl_beta, stat_means["exact_kl"])]
            if args.adaptive_clip:
                clip_coef = [
                    update_clip_coef(c, kl, args.kl_target) for c, kl in zip(clip_coef, stat_means["exact_kl"])
                ]

            # ---------------- Logging: each seed to its own run, the tags of ppo_continuous.py ----------------
            sps = int(global_step / (time.time() - start_time))  # steps per second of each seed
            updates_done = torch.stack(minibatch_active).sum(dim=0).tolist()
            for k, writer in enumerate(writers):
                writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
                for name, means in stat_means.items():
                    writer.add_scalar(f"losses/{name}", means[k], global_step)
                writer.add_scalar("charts/kl_beta", kl_beta[k], global_step)  # beta and epsilon after adaptation
                writer.add_scalar("charts/clip_coef", clip_coef[k], global_step)
                explained = explained_variance(b_values[k], b_returns[k])
                writer.add_scalar("losses/explained_variance", explained, global_step)
                writer.add_scalar("charts/update_epochs_done", updates_done[k] / args.num_minibatches, global_step)
                writer.add_scalar("charts/SPS", sps, global_step)
            log_seed_group(writers, global_step, recent_returns)  # under a W&B sweep: the group's curve
            loop.report(iteration, global_step, recent_returns)  # a console line every progress_interval seconds

            # ---------------- Checkpoint: every checkpoint_every iterations, at the end, on a signal ----------------
            if loop.checkpoint_due(iteration):
                loop.save_checkpoint(agent, optimizer, normalizers, rngs,
                    iteration=iteration, global_step=global_step, elapsed=time.time() - start_time, next_obs=next_obs,
                    recent_returns=recent_returns, kl_beta=kl_beta, clip_coef=clip_coef, wandb_ids=wandb_ids,
                )  # fmt: skip
            loop.exit_if_requested(iteration, global_step)

    # --- Finish: summary line, saved models and their evaluation ---
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
    for seed in args.seeds:  # numpy takes seeds below 2**32, and env i gets seed + i
        if not 0 <= seed <= 2**31 - 1:
            raise UsageError(f"--seeds must be in [0, 2**31 - 1], got {seed}")
    if not args.seeds or len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds must name one or more different seeds, got {' '.join(map(str, args.seeds))}")
    if len(args.seeds) > 1 and args.run_name is not None and "{seed}" not in args.run_name:
        raise UsageError(f"--run-name {args.run_name!r} names one run per seed: put {{seed}} in it")
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
    """This run's options, checked, the checkpoint to resume (or None) and each seed's run directory; W&B's login."""
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
    if checkpoint is not None:  # a resumed run goes on in its own directories, beside the first seed's, wherever
        parent_dir = os.path.dirname(os.path.dirname(checkpoint["path"]))
        return args, checkpoint, [os.path.join(parent_dir, name) for name in checkpoint["training"]["run_names"]]
    run_name = args.run_name or f"{args.env_id.replace('/', '-')}__{args.exp_name}__{{seed}}__{int(time.time())}"
    run_dirs = [os.path.join(args.output_dir, run_name.replace("{seed}", str(seed))) for seed in args.seeds]
    for run_dir in run_dirs:
        if os.path.exists(run_dir):
            raise UsageError(f"{run_dir} already exists; pick another --run-name or --resume (nothing was overwritten)")
    return args, checkpoint, run_dirs


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


def start_tracking(args: Args, run_dirs: list, checkpoint: Optional[dict]) -> tuple:
    """Make a new run's directories (removed again if this fails); returns each seed's TensorBoard writer, which with
    --track also logs to the seed's W&B run (under a sweep agent, to the seed group's), and the W&B ids."""
    new_run, made, writers = checkpoint is None, [], []
    try:
        for run_dir in run_dirs if new_run else []:
            try:
                os.makedirs(run_dir)
            except OSError as error:
                raise UsageError(f"cannot create {run_dir}: {error.strerror}") from None
            made.append(run_dir)
        wandb_ids = [None] * len(run_dirs) if new_run else checkpoint["training"]["wandb_ids"]
        from torch.utils.tensorboard import SummaryWriter

        group = None  # the seed group's W&B run under a sweep agent
        for k, run_dir in enumerate(run_dirs):
            # purge_step: TensorBoard drops what an earlier process logged after the checkpoint: no step twice
            writer = SummaryWriter(run_dir, purge_step=None if new_run else checkpoint["training"]["global_step"] + 1)
            if new_run:
                table = "\n".join(f"|{key}|{value}|" for key, value in seed_args(args, k).items())
                writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
            if args.track and os.environ.get("WANDB_SWEEP_ID"):  # under a W&B sweep agent: one run, the group's
                group = group or SeedGroupRun(args, run_dirs[0], wandb_ids[0])
                wandb_ids[k] = group.wandb_run.id
                writer = SeedGroupWriter(writer, group)
            elif args.track:
                wandb_run = importlib.import_module("wandb").init(
                    project=args.wandb_project_name, entity=args.wandb_entity, config=seed_args(args, k),
                    name=os.path.basename(run_dir), dir=run_dir, save_code=True, id=wandb_ids[k], resume="allow",
                    reinit="create_new",  # one W&B run per seed, all open at once
                )  # fmt: skip
                wandb_ids[k] = wandb_run.id
                writer = WandbWriter(writer, wandb_run)
            writers.append(writer)
    except BaseException as error:
        for writer in writers:
            writer.close()
        for run_dir in made:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(error, Exception) and not isinstance(error, (UsageError, RunError)):
            raise RunError(f"cannot start tracking: {describe(error)}") from error
        raise
    return writers, wandb_ids


class WandbWriter:
    """A seed's TensorBoard writer that also logs every scalar to the seed's W&B run, against global_step (W&B's
    sync_tensorboard follows one run per process; here each seed has its own run)."""

    def __init__(self, writer, wandb_run):
        self.writer, self.wandb_run = writer, wandb_run
        wandb_run.define_metric("*", step_metric="global_step")

    def add_scalar(self, tag: str, value, global_step: int) -> None:
        self.writer.add_scalar(tag, value, global_step)
        self.wandb_run.log({tag: float(value), "global_step": global_step})

    def add_text(self, tag: str, text: str) -> None:
        self.writer.add_text(tag, text)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        self.wandb_run.finish()


class SeedGroupRun:
    """Under a W&B sweep agent, the seed group's one W&B run (the sweep's): each seed's return, the mean of its last
    100 episodes, under seed_{seed}/return, and the group's curve over the seeds (group/return_mean, group/return_iqm,
    group/return_min, group/return_max), so the sweep's metric ranks configurations, not seeds. Each seed's full log
    stays in its TensorBoard run."""

    def __init__(self, args: Args, run_dir: str, wandb_id: Optional[str]):
        self.seeds, self.open_writers = args.seeds, len(args.seeds)
        self.wandb_run = importlib.import_module("wandb").init(
            project=args.wandb_project_name, entity=args.wandb_entity, config=asdict(args),
            name=os.path.basename(run_dir), dir=run_dir, save_code=True, id=wandb_id, resume="allow",
        )  # fmt: skip
        self.wandb_run.define_metric("*", step_metric="global_step")

    def log(self, global_step: int, recent_returns: list) -> None:
        means = {seed: float(np.mean(returns)) for seed, returns in zip(self.seeds, recent_returns) if returns}
        if not means:
            return
        values = np.sort(list(means.values()))
        cut = len(values) // 4  # interquartile mean: the middle half, a quarter cut from each end
        row = {f"seed_{seed}/return": value for seed, value in means.items()}
        row["group/return_mean"], row["group/return_iqm"] = values.mean(), values[cut : len(values) - cut].mean()
        row["group/return_min"], row["group/return_max"], row["global_step"] = values[0], values[-1], global_step
        self.wandb_run.log(row)


class SeedGroupWriter:
    """A seed's TensorBoard writer whose seed belongs to a SeedGroupRun; the last one closed finishes the W&B run."""

    def __init__(self, writer, group: SeedGroupRun):
        self.writer, self.group = writer, group

    def add_scalar(self, tag: str, value, global_step: int) -> None:
        self.writer.add_scalar(tag, value, global_step)

    def add_text(self, tag: str, text: str) -> None:
        self.writer.add_text(tag, text)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        self.group.open_writers -= 1
        if self.group.open_writers == 0:
            self.group.wandb_run.finish()


def log_seed_group(writers: list, global_step: int, recent_returns: list) -> None:
    """The group's curve, when the seeds log to one W&B run under a sweep agent; nothing otherwise."""
    if isinstance(writers[0], SeedGroupWriter):
        writers[0].group.log(global_step, recent_returns)


class TrainingLoop:
    """The training loop's context: console lines, checkpoints, signals; however it ends, envs and handlers close."""

    def __init__(self, args: Args, run_dirs: list, writers: list, envs, checkpoint, num_iterations: int, start_time):
        self.args, self.run_dirs, self.writers, self.envs, self.signum = args, run_dirs, writers, envs, None
        self.run_dir = run_dirs[0]  # the first seed's: the checkpoint of all seeds is there
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
        for name, means in stat_means.items():
            for seed, mean in zip(self.args.seeds, means):
                if not math.isfinite(mean):
                    path = os.path.join(self.run_dir, "checkpoint.pt")
                    kept = f"the last checkpoint, {path} (iteration {self.last_checkpoint}), is kept"
                    kept = kept if self.last_checkpoint else "no checkpoint was written (see --checkpoint-every)"
                    message = f"iteration {iteration} (step {global_step:,}): seed {seed}'s {name} is {mean}"
                    raise RunError(f"{message}; stopped, {kept}")

    def report(self, iteration: int, global_step: int, recent_returns: list) -> None:
        """Each seed's step and SPS (times the seeds), the mean, min and max over the seeds of their recent return."""
        now, total = time.time(), self.num_iterations * self.args.num_envs * self.args.num_steps
        if now - self.last_line < self.args.progress_interval and iteration != self.num_iterations:
            return
        self.last_line, sps = now, int(global_step / (now - self.start_time))
        eta = (total - global_step) / max(sps, 1)
        elapsed, left = (timedelta(seconds=int(seconds)) for seconds in (now - self.start_time, eta))
        print(f"step {global_step:>9,}/{total:,} ({100 * global_step / total:3.0f}%) | SPS {sps:>6,} x "
              f"{len(self.args.seeds)} seeds | return {seed_returns(recent_returns)} | elapsed {elapsed} | left {left}",
              flush=True)  # fmt: skip

    def checkpoint_due(self, iteration: int) -> bool:
        every = self.args.checkpoint_every
        return self.signum is not None or every > 0 and (iteration % every == 0 or iteration == self.num_iterations)

    def save_checkpoint(self, agent, optimizer, normalizers: dict, rngs: dict, **training) -> None:
        """Write checkpoint.pt in the first seed's run directory: every seed's model, the options, statistics and all
        the loop needs to go on (the RNGs: the global ones and each seed's minibatch shuffler and action noise)."""
        for writer in self.writers:
            writer.flush()  # the events up to this step reach the disk before the checkpoint that resumes after them
        numpy_rng = np.random.get_state()  # (kind, keys, position, has_gauss, cached_gaussian): keys as a list
        training["rng"] = {
            "python": random.getstate(), "numpy": (numpy_rng[0], numpy_rng[1].tolist(), *numpy_rng[2:]),
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "minibatch": [rng.bit_generator.state for rng in rngs["minibatch"]],
            "actions": [generator.get_state() for generator in rngs["actions"]],
        }  # fmt: skip
        training["recent_returns"] = [list(seed_returns) for seed_returns in training["recent_returns"]]
        training.update(optimizer=optimizer.state_dict(), envs=env_state(self.envs))
        training["run_names"] = [os.path.basename(run_dir) for run_dir in self.run_dirs]
        extra = {"global_step": training["global_step"], "training": training}
        write_atomically(os.path.join(self.run_dir, "checkpoint.pt"), agent, asdict(self.args), normalizers, extra)
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
            for writer in self.writers:
                writer.close()

    def finish(self, global_step: int, recent_returns: list, agent, normalizers: dict, device) -> None:
        """The summary line; with --save-model, each seed's model.pt and its evaluation (eval/episodic_return): a
        model of PARENT, its Agent, options and statistics at that seed; then closing."""
        elapsed, args, num_seeds = time.time() - self.start_time, self.args, len(self.args.seeds)
        rate = num_seeds * global_step / elapsed  # all seeds' steps per second
        print(f"done: {global_step:,} steps x {num_seeds} seeds in {timedelta(seconds=int(elapsed))} ({int(rate):,} "
              f"seed-steps per second) | return over the last 100 episodes {seed_returns(recent_returns)} | first run "
              f"{self.run_dir}")  # fmt: skip
        done = dict(global_step=global_step, seeds=num_seeds, seconds=elapsed, seed_steps_per_second=rate)
        print(status_line("done", **done))
        if args.save_model:
            obs_dim, action_dim = agent.critic[0].shape[1], agent.actor[-2].shape[2]
            for k, (run_dir, writer) in enumerate(zip(self.run_dirs, self.writers)):
                model_path, extra = os.path.join(run_dir, "model.pt"), {"global_step": global_step}
                seed_agent = agent.unstack(k, Agent(obs_dim, action_dim).to(agent.critic[0].device))
                seed_statistics = seed_normalizers(normalizers, k)  # as ppo_continuous.py keeps them
                write_atomically(model_path, seed_agent, seed_args(args, k), seed_statistics, extra, PARENT)
                model = load_checkpoint(model_path, "model.pt", PARENT)  # read back as --eval-checkpoint reads it
                returns = evaluate(model, args.eval_episodes, args.eval_deterministic, args.seeds[k] + 10**6, device)
                for episode_index, episodic_return in enumerate(returns):
                    writer.add_scalar("eval/episodic_return", episodic_return, episode_index)
                print(f"saved {model_path}; evaluation: mean return {np.mean(returns):.2f} +- {np.std(returns):.2f} "
                      f"over {len(returns)} episodes")  # fmt: skip
        for writer in self.writers:
            writer.close()


def seed_args(args: Args, seed_index: int) -> dict:
    """The options of one seed's run as ppo_continuous.py has them: --seed k in place of --seeds."""
    options = {}
    for name, value in asdict(args).items():
        if name == "seeds":
            options["seed"] = value[seed_index]
        elif name == "run_name":
            options[name] = None if value is None else value.replace("{seed}", str(args.seeds[seed_index]))
        else:
            options[name] = value
    return options


def seed_normalizers(normalizers: dict, seed_index: int) -> dict:
    """One seed's running statistics, shaped as ppo_continuous.py keeps them: the seed's entry of each array (the
    seed axis is the first of the statistics' arrays and the second of the per-env discounted returns)."""
    parts = {name: copy.deepcopy(normalizer) for name, normalizer in normalizers.items()}
    obs_rms, reward_scaler = parts["obs_rms"], parts["reward_scaler"]
    for statistics in (obs_rms, reward_scaler.return_rms if reward_scaler is not None else None):
        if statistics is not None:
            statistics.mean, statistics.var = statistics.mean[seed_index], statistics.var[seed_index]
    if reward_scaler is not None:
        reward_scaler.discounted_returns = reward_scaler.discounted_returns[:, seed_index]
    return parts


def write_atomically(path: str, agent: nn.Module, args: dict, normalizers: dict, extra: dict, script=SCRIPT) -> None:
    """Write the model, options, statistics and `extra` atomically (a temporary file, renamed): never half a file."""
    payload = {"format": CHECKPOINT_FORMAT, "script": script, "env_id": args["env_id"], "args": args, **extra}
    payload.update({name: None if stats is None else stats.state_dict() for name, stats in normalizers.items()})
    payload["model"] = agent.state_dict()
    try:
        torch.save(payload, f"{path}.tmp")
        os.replace(f"{path}.tmp", path)
    except OSError as error:
        pathlib.Path(f"{path}.tmp").unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {error.strerror or error}") from None


def load_checkpoint(path: str, file_name: str = "checkpoint.pt", script: str = SCRIPT) -> dict:
    """A checkpoint.pt to resume or a model.pt of `script` (a directory: its `file_name`), loaded safely and checked."""
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
    if payload["script"] != script:
        raise UsageError(f"{path} was written by {payload['script']}.py, not {script}.py")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise UsageError(f"{path} has checkpoint format {payload['format']}, this script reads {CHECKPOINT_FORMAT}")
    if file_name == "checkpoint.pt" and "training" not in payload:
        raise UsageError(f"{path} holds a trained model but no training state; resume a checkpoint.pt")
    return payload | {"path": path}


def resume_run(checkpoint, agent, optimizer, normalizers, envs, rngs, next_obs, num_iterations: int):
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
    for minibatch_rng, saved in zip(rngs["minibatch"], rng["minibatch"]):
        minibatch_rng.bit_generator.state = saved
    for generator, saved in zip(rngs["actions"], rng["actions"]):
        generator.set_state(saved)
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
    """--eval-checkpoint: play --eval-episodes episodes with a saved model and print their mean return: one seed's
    model.pt (or its run directory), or every seed of a checkpoint.pt of this script."""
    if os.path.basename(args.eval_checkpoint) == "checkpoint.pt":
        payloads = seed_payloads(load_checkpoint(args.eval_checkpoint))
    else:
        payloads = [load_checkpoint(args.eval_checkpoint, "model.pt", PARENT)]
    check_env(payloads[0]["env_id"])
    for payload in payloads:
        video_dir = os.path.join(os.path.dirname(payload["path"]), "eval-videos") if args.capture_video else None
        returns = evaluate(payload, args.eval_episodes, args.eval_deterministic, args.seeds[0], device, video_dir)
        actions = "greedy" if args.eval_deterministic else "sampled"
        print(f"{payload['env_id']} seed {payload['args']['seed']}: mean return {np.mean(returns):.2f} +- "
              f"{np.std(returns):.2f} over {len(returns)} episodes ({actions} actions)"
              + (f"; videos in {video_dir}" if video_dir else ""))  # fmt: skip


def seed_payloads(checkpoint: dict) -> list:
    """Each seed of a checkpoint of this script as a saved model of ppo_continuous.py, for evaluate()."""
    num_seeds, obs_dim, _ = checkpoint["model"]["critic.0"].shape
    action_dim = checkpoint["model"]["actor_logstd"].shape[1]
    agent = BatchedAgent([Agent(obs_dim, action_dim) for _ in range(num_seeds)])
    agent.load_state_dict(checkpoint["model"])
    obs_rms = None
    if checkpoint["obs_rms"] is not None:
        obs_rms = RunningMeanStd()
        obs_rms.load_state_dict(checkpoint["obs_rms"])
    args, payloads = Args(**checkpoint["args"]), []
    for k in range(num_seeds):
        seed_obs_rms = seed_normalizers({"obs_rms": obs_rms, "reward_scaler": None}, k)["obs_rms"]
        payloads.append({
            "env_id": checkpoint["env_id"], "args": seed_args(args, k), "path": checkpoint["path"],
            "model": agent.unstack(k, Agent(obs_dim, action_dim)).state_dict(),
            "obs_rms": None if seed_obs_rms is None else seed_obs_rms.state_dict(),
        })  # fmt: skip
    return payloads


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


def seed_returns(recent_returns: list) -> str:
    """'mean (min, max) over n seeds' of the seeds' mean recent returns, those of seeds with an episode yet."""
    means = [np.mean(seed_returns) for seed_returns in recent_returns if seed_returns]
    if not means:
        return "n/a"
    return f"{np.mean(means):.1f} (min {np.min(means):.1f}, max {np.max(means):.1f}) over {len(means)} seeds"


def status_line(event: str, **fields) -> str:
    """PPO_STATUS and {"event": event, **fields} as JSON: a line for tools (benchmark/run_one.py), not people."""
    return "PPO_STATUS " + json.dumps({"event": event, **fields})


def describe(error: BaseException) -> str:
    """ "TypeName: first line of its message", for one-line error reports."""
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"


def flatten_parameters(agent: nn.Module) -> torch.Tensor:
    """For speed alone, one tensor (num_seeds, num_params) for Adam and clipping: parameters and gradients (never set
    None) as views of it, row k seed k's, so a seed's gradient norm is its row's."""
    parameters = list(agent.parameters())
    num_seeds, num_params = parameters[0].shape[0], sum(parameter[0].numel() for parameter in parameters)
    flat_params = torch.zeros((num_seeds, num_params), device=parameters[0].device)
    flat_params.grad = torch.zeros_like(flat_params)
    # A parameter's rows lie num_params apart, which autograd warns about; it still adds into the views in place
    warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
    offset = 0
    for parameter in parameters:
        strides = (num_params,) + parameter.stride()[1:]  # within a row, the parameter's own layout
        parameter.data = flat_params.as_strided(parameter.shape, strides, offset).copy_(parameter.detach())
        parameter.grad = flat_params.grad.as_strided(parameter.shape, strides, offset)
        offset += parameter[0].numel()
    return flat_params


if __name__ == "__main__":
    try:
        main(tyro.cli(Args), sys.argv[1:])
    except (UsageError, RunError) as error:
        print(f"{SCRIPT}.py: error: {error}", file=sys.stderr)
        sys.exit(2 if isinstance(error, UsageError) else 1)
    except KeyboardInterrupt:
        sys.exit(130)
