"""Tiny environments with known values, to check truncation handling end to end through the real scripts.

`python ppo_discrete.py --env-id tests.probe_envs:LoopTruncated-v0` imports this module, which registers
the envs (gymnasium's "module:env_id" form).

LoopEnv alternates between two states, s0 -> s1 -> s0 -> ..., with reward 1 on leaving s1 and 0 on
leaving s0, and ends after 3 steps (s0, s1, s0 -> s1). The observation does not show the time, so what
the critic learns for s0 and s1 depends on how the episode end is treated:

- truncated (time limit, the process goes on): V(s1) = 1 + g V(s0), V(s0) = g V(s1)
  -> V(s0) = g / (1 - g^2), V(s1) = 1 / (1 - g^2)
- terminated (the process really ends after s0 -> s1): s0 is seen at t=0 and t=2 (target 0), s1 at
  t=1, and since the critic cannot tell t=0 from t=2 its fixed point depends on GAE's lambda as well;
- a bug that treats the truncation as a termination lands on the terminated values; one that bootstraps
  from the reset observation, or stores the reset step as a transition (s1 -> s0 with reward 0), lands
  on yet other values. expected_values() gives the fixed points.
"""

import gymnasium as gym
import numpy as np


class LoopEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self, terminate: bool, continuous_actions: bool = False, obs_scale: float = 1.0, obs_offset: float = 0.0
    ):
        self.terminate = terminate
        self.obs_scale, self.obs_offset = obs_scale, obs_offset
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        if continuous_actions:
            self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        else:
            self.action_space = gym.spaces.Discrete(2)
        self.state = 0
        self.t = 0

    def observation(self, state: int) -> np.ndarray:
        one_hot = np.zeros(2, dtype=np.float32)
        one_hot[state] = 1.0
        return one_hot * self.obs_scale + self.obs_offset

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = 0, 0
        return self.observation(self.state), {}

    def step(self, action):
        reward = 1.0 if self.state == 1 else 0.0
        self.state = 1 - self.state
        self.t += 1
        ended = self.t >= 3
        return self.observation(self.state), reward, ended and self.terminate, ended and not self.terminate, {}


def expected_values(gamma: float, gae_lambda: float, terminate: bool) -> tuple:
    """(V(s0), V(s1)) at the fixed point of the critic's lambda-return targets.

    Targets G_t = r_t + g ((1 - lambda) V(s_{t+1}) + lambda G_{t+1}), with G after the last step equal to
    0 on termination and V(final observation) on truncation; V(s0) is the mean of its targets at t=0, 2.
    Truncated, the values are those of the endless process for every lambda: V(s0) = g / (1 - g^2),
    V(s1) = 1 / (1 - g^2). Terminated: G_2 = 0, V(s1) = 1 + g (1 - lambda) V(s0), V(s0) = g V(s1) / 2."""
    if terminate:
        value_s1 = 1.0 / (1.0 - gamma**2 * (1.0 - gae_lambda) / 2.0)
        return gamma * value_s1 / 2.0, value_s1
    return gamma / (1.0 - gamma**2), 1.0 / (1.0 - gamma**2)


gym.register("LoopTruncated-v0", entry_point=LoopEnv, kwargs={"terminate": False})
gym.register("LoopTerminated-v0", entry_point=LoopEnv, kwargs={"terminate": True})
gym.register(
    "LoopTruncatedContinuous-v0",
    entry_point=LoopEnv,
    kwargs={"terminate": False, "continuous_actions": True, "obs_scale": 5.0, "obs_offset": 20.0},
)
gym.register(
    "LoopTerminatedContinuous-v0",
    entry_point=LoopEnv,
    kwargs={"terminate": True, "continuous_actions": True, "obs_scale": 5.0, "obs_offset": 20.0},
)


class NanRewardEnv(gym.Env):
    """Reward 1 each step until the env has taken `nan_after` steps in all, then NaN: a run on it must stop
    with a one-line error naming the iteration and the quantity, and keep its last good checkpoint.
    Episodes are truncated after 10 steps."""

    metadata = {"render_modes": []}

    def __init__(self, nan_after: int = 200, continuous_actions: bool = False):
        self.nan_after = nan_after
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = (
            gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32) if continuous_actions else gym.spaces.Discrete(2)
        )
        self.total_steps = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, size=3).astype(np.float32), {}

    def step(self, action):
        self.total_steps += 1
        self.t += 1
        reward = float("nan") if self.total_steps >= self.nan_after else 1.0
        return self.np_random.uniform(-1, 1, size=3).astype(np.float32), reward, False, self.t >= 10, {}


gym.register("NanReward-v0", entry_point=NanRewardEnv)
gym.register("NanRewardContinuous-v0", entry_point=NanRewardEnv, kwargs={"continuous_actions": True})
