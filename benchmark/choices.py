"""Micro-benchmarks of the small speed choices the scripts' comments name (docs/performance.md):

    python -m benchmark.choices

Each line times one choice against the plain torch way, one thread, best of 5 repeats, in microseconds per call."""

import timeit
from typing import Callable

import numpy as np
import torch
from torch.distributions import Categorical, Normal

HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))


def per_call_us(function: Callable[[], object], number: int) -> float:
    """Microseconds per call, the best of 5 repeats of `number` calls."""
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def gae_recursion(num_steps: int, num_envs: int) -> tuple[float, float]:
    """The backward GAE recursion of compute_gae over (num_steps, num_envs): torch, then numpy."""
    deltas, decay = torch.randn(num_steps, num_envs), torch.rand(num_steps, num_envs)

    def run(deltas, decay, zeros_like) -> None:
        advantages, last = zeros_like(deltas), zeros_like(deltas[0])
        for t in reversed(range(num_steps)):
            last = deltas[t] + decay[t] * last
            advantages[t] = last

    return (
        per_call_us(lambda: run(deltas, decay, torch.zeros_like), 20),
        per_call_us(lambda: run(deltas.numpy(), decay.numpy(), np.zeros_like), 20),
    )


def main() -> None:
    torch.set_num_threads(1)
    for num_steps, num_envs in ((128, 4), (2048, 1)):
        in_torch, in_numpy = gae_recursion(num_steps, num_envs)
        print(f"GAE recursion {num_steps}x{num_envs}: torch {in_torch:.0f} us, numpy {in_numpy:.0f} us")
    with torch.inference_mode():
        logits, actions = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])

        def categorical() -> tuple:
            distribution = Categorical(logits=logits)
            return distribution.log_prob(actions), distribution.entropy()

        def categorical_written_out() -> tuple:
            log_probs = torch.log_softmax(logits, dim=-1)
            return log_probs.gather(-1, actions.unsqueeze(-1)), -(log_probs.exp() * log_probs).sum(dim=-1)

        print(
            f"categorical log-prob and entropy, 4 rows: torch.distributions {per_call_us(categorical, 2000):.1f} us, "
            f"written out {per_call_us(categorical_written_out, 2000):.1f} us"
        )
        mean, log_std, action = torch.randn(64, 6), torch.zeros(6), torch.randn(64, 6)

        def normal() -> tuple:
            distribution = Normal(mean, log_std.exp())
            return distribution.log_prob(action).sum(dim=-1), distribution.entropy().sum(dim=-1)

        def normal_written_out() -> tuple:
            log_prob = -0.5 * ((action - mean) / log_std.exp()) ** 2 - log_std - HALF_LOG_2PI
            return log_prob.sum(dim=-1), (0.5 + HALF_LOG_2PI + log_std).sum()

        print(
            f"Gaussian log-prob and entropy, 64x6: torch.distributions {per_call_us(normal, 2000):.1f} us, "
            f"written out {per_call_us(normal_written_out, 2000):.1f} us"
        )
    batch = np.random.randn(1, 17)
    with_mean = per_call_us(lambda: (np.mean(batch, axis=0), np.var(batch, axis=0)), 20000)
    with_sum = per_call_us(lambda: (batch.sum(axis=0) / 1, ((batch - batch.sum(axis=0)) ** 2).sum(axis=0) / 1), 20000)
    print(
        f"running statistics of one 17-wide row: np.mean and np.var {with_mean:.2f} us, ndarray.sum {with_sum:.2f} us"
    )
    rewards, reward_tensor, reward = np.zeros((128, 4), np.float32), torch.zeros(128, 4), np.ones(4, np.float32)
    as_numpy = per_call_us(lambda: rewards.__setitem__(3, reward), 20000)
    as_tensor = per_call_us(lambda: reward_tensor.__setitem__(3, torch.as_tensor(reward)), 20000)
    print(f"one step's rewards stored, 4 envs: numpy {as_numpy:.2f} us, tensor {as_tensor:.2f} us")


if __name__ == "__main__":
    main()
