"""A straightforward PPO, written the way most single-file implementations are, as a speed reference.

It is NOT one of the project's scripts and is not meant for learning results: it exists so that
`benchmark.throughput` can measure the project's scripts against the common way of writing PPO on the
same machine at the same moment (machines are noisy; only ratios measured side by side mean anything).

What makes it "straightforward": torch.distributions (with argument validation) for the policy, the
default NEXT_STEP autoreset (reset steps stored as transitions), every loss and statistic pulled to
Python with .item() per minibatch, torch's default thread count, default Adam (no fused kernel), and a
per-step torch.Tensor(...) copy of the observation. Hyperparameters and network sizes match the
project's defaults, so steps per second are comparable. `--atari` swaps in what CleanRL-style ppo_atari
scripts do: gymnasium's AtariPreprocessing (no-op reset, frame skip 4, 84x84 grayscale), reward sign and a
4-frame stack, the Nature CNN on float32 frames divided by 255, and float32 frame storage.

    python -m benchmark.reference.naive_ppo --env-id CartPole-v1 --total-timesteps 100000
    python -m benchmark.reference.naive_ppo --env-id Pendulum-v1 --continuous --num-envs 1 --num-steps 2048 \
        --num-minibatches 32 --update-epochs 10 --learning-rate 3e-4 --ent-coef 0 --total-timesteps 100000
    python -m benchmark.reference.naive_ppo --env-id BreakoutNoFrameskip-v4 --atari --num-envs 8 --clip-coef 0.1 \
        --total-timesteps 20480
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Categorical, Normal


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--continuous", action="store_true", help="Gaussian policy for Box actions")
    parser.add_argument("--atari", action="store_true", help="Atari preprocessing and the Nature CNN")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--total-timesteps", type=int, default=100_000)
    parser.add_argument("--learning-rate", type=float, default=2.5e-4)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--clip-coef", type=float, default=0.2)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--vf-coef", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    return parser.parse_args()


def make_env(env_id: str, atari: bool) -> gym.Env:
    if not atari:
        return gym.wrappers.RecordEpisodeStatistics(gym.make(env_id))
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(env_id, frameskip=1)
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True
    )
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = gym.wrappers.TransformReward(env, np.sign)
    return gym.wrappers.FrameStackObservation(env, 4)


def layer_init(layer: nn.Module, std: float = np.sqrt(2)) -> nn.Module:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


def mlp(in_dim: int, out_dim: int, out_std: float) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(in_dim, 64)),
        nn.Tanh(),
        layer_init(nn.Linear(64, 64)),
        nn.Tanh(),
        layer_init(nn.Linear(64, out_dim), out_std),
    )


class Agent(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, continuous: bool):
        super().__init__()
        self.continuous = continuous
        self.critic = mlp(obs_dim, 1, 1.0)
        self.actor = mlp(obs_dim, action_dim, 0.01)
        if continuous:
            self.logstd = nn.Parameter(torch.zeros(1, action_dim))

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        if self.continuous:
            mean = self.actor(x)
            dist = Normal(mean, self.logstd.expand_as(mean).exp())
        else:
            dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        if self.continuous:
            return action, dist.log_prob(action).sum(1), dist.entropy().sum(1), self.critic(x)
        return action, dist.log_prob(action), dist.entropy(), self.critic(x)


class AtariAgent(nn.Module):
    """Nature CNN trunk shared by the actor and critic heads."""

    def __init__(self, num_actions: int):
        super().__init__()
        self.network = nn.Sequential(
            layer_init(nn.Conv2d(4, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(), layer_init(nn.Linear(64 * 7 * 7, 512)), nn.ReLU(),
        )  # fmt: skip
        self.actor = layer_init(nn.Linear(512, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear(512, 1), std=1.0)

    def get_value(self, x):
        return self.critic(self.network(x / 255.0))

    def get_action_and_value(self, x, action=None):
        hidden = self.network(x / 255.0)
        dist = Categorical(logits=self.actor(hidden))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(hidden)


def main() -> None:
    args = parse_args()
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    envs = gym.vector.SyncVectorEnv([lambda: make_env(args.env_id, args.atari) for _ in range(args.num_envs)])
    obs_shape = envs.single_observation_space.shape
    action_shape = envs.single_action_space.shape if args.continuous else ()
    action_dim = int(np.prod(action_shape)) if args.continuous else int(envs.single_action_space.n)
    agent = AtariAgent(action_dim) if args.atari else Agent(int(np.prod(obs_shape)), action_dim, args.continuous)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape)
    actions = torch.zeros((args.num_steps, args.num_envs) + action_shape)
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    values = torch.zeros((args.num_steps, args.num_envs))

    global_step, start = 0, time.time()
    next_obs = torch.Tensor(envs.reset(seed=args.seed)[0])
    next_done = torch.zeros(args.num_envs)
    returns_seen = []
    for iteration in range(1, num_iterations + 1):
        optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob
            next_obs_np, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            rewards[step] = torch.tensor(reward).view(-1)
            next_obs, next_done = torch.Tensor(next_obs_np), torch.Tensor(np.logical_or(terminations, truncations))
            if "episode" in infos:
                returns_seen.extend(infos["episode"]["r"][infos["_episode"]].tolist())

        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs, b_logprobs = obs.reshape((-1,) + obs_shape), logprobs.reshape(-1)
        b_actions = actions.reshape((-1,) + action_shape)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        b_inds = np.arange(batch_size)
        for epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start_index in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[start_index : start_index + minibatch_size]
                mb_actions = b_actions[mb_inds] if args.continuous else b_actions.long()[mb_inds]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], mb_actions)
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean().item()
                    clipfrac = ((ratio - 1.0).abs() > args.clip_coef).float().mean().item()
                mb_adv = b_advantages[mb_inds]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(
                    -mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                ).mean()
                newvalue = newvalue.view(-1)
                v_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                v_clipped = b_values[mb_inds] + torch.clamp(
                    newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                )
                v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb_inds]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
                _ = (pg_loss.item(), v_loss.item(), entropy_loss.item(), approx_kl, clipfrac)

    elapsed = time.time() - start
    recent = np.mean(returns_seen[-100:]) if returns_seen else float("nan")
    print(
        f"done: {global_step} steps in {elapsed:.1f}s ({global_step / elapsed:.0f} SPS) "
        f"| return over the last 100 episodes {recent:.2f}"
    )
    # the same for tools, as the project's scripts write it
    print("PPO_STATUS " + json.dumps({"event": "done", "global_step": global_step, "seconds": elapsed,
                                      "steps_per_second": global_step / elapsed}))  # fmt: skip


if __name__ == "__main__":
    main()
