"""flatten_parameters: the agent's parameters and gradients as views of one flat tensor, so that Adam and gradient
clipping run on one tensor. Checked against the plain per-tensor optimizer step and torch's clip_grad_norm_ over the
list of parameters, an independent computation."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import ppo_atari
import ppo_continuous
import ppo_discrete

# (module, agent constructor, a batch of inputs the agent takes)
AGENTS = {
    "discrete": (ppo_discrete, lambda: ppo_discrete.Agent(4, 2), lambda: torch.randn(16, 4)),
    "continuous": (ppo_continuous, lambda: ppo_continuous.Agent(3, 2), lambda: torch.randn(16, 3)),
    "atari": (ppo_atari, lambda: ppo_atari.Agent(4), lambda: torch.randint(0, 256, (4, 4, 84, 84), dtype=torch.uint8)),
}


REPO = Path(__file__).resolve().parent.parent
# The scripts' gradient clipping, written out (the lines of their update, checked to be there below)
CLIPPING = (
    "grad_norm = torch.linalg.vector_norm(flat_params.grad)",
    "flat_params.grad.mul_(torch.clamp(args.max_grad_norm / (grad_norm + 1e-6), max=1.0))",
)


def clip_as_the_scripts_do(flat_params: torch.Tensor, max_grad_norm: float) -> torch.Tensor:
    grad_norm = torch.linalg.vector_norm(flat_params.grad)
    flat_params.grad.mul_(torch.clamp(max_grad_norm / (grad_norm + 1e-6), max=1.0))
    return grad_norm


def loss_of(agent: nn.Module, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """A loss through the policy and the value head, as the update's is."""
    _, logprob, entropy, value, _ = agent.get_action_and_value(x, actions)
    return (
        -(logprob * torch.linspace(-1, 1, len(logprob))).mean()
        - 0.01 * entropy.mean()
        + 0.5 * (value - 1.0).pow(2).mean()
    )


@pytest.mark.parametrize("name", AGENTS)
def test_flat_parameters_are_views_and_train_like_per_tensor_adam(name):
    module, make_agent, make_input = AGENTS[name]
    torch.manual_seed(0)
    agent = make_agent()
    reference = copy.deepcopy(agent)
    flat_params = module.flatten_parameters(agent)

    # Every parameter and gradient is a view of the flat tensors, with its values, shape and strides unchanged
    assert flat_params.numel() == sum(parameter.numel() for parameter in reference.parameters())
    for parameter, original in zip(agent.parameters(), reference.parameters()):
        assert parameter.untyped_storage().data_ptr() == flat_params.untyped_storage().data_ptr()
        assert parameter.grad.untyped_storage().data_ptr() == flat_params.grad.untyped_storage().data_ptr()
        assert parameter.shape == original.shape and parameter.stride() == original.stride()
        assert torch.equal(parameter, original)
    if name == "atari":  # the convolution weights keep their channels_last layout
        assert agent.network[0].weight.is_contiguous(memory_format=torch.channels_last)

    optimizer = torch.optim.Adam([flat_params], lr=1e-3, eps=1e-5, fused=True)
    reference_optimizer = torch.optim.Adam(
        list(reference.parameters()), lr=1e-3, eps=1e-5, foreach=False
    )  # the plain loop over tensors
    for _ in range(3):
        x = make_input()
        with torch.no_grad():
            actions = agent.get_action_and_value(x)[0]
        flat_params.grad.zero_()
        loss_of(agent, x, actions).backward()
        norm = clip_as_the_scripts_do(flat_params, 0.5)
        optimizer.step()

        reference_optimizer.zero_grad(set_to_none=True)
        loss_of(reference, x, actions).backward()
        reference_norm = nn.utils.clip_grad_norm_(list(reference.parameters()), 0.5, foreach=False)
        reference_optimizer.step()

        assert norm > 0.5  # clipping was active: the global norm of all gradients is what scaled them
        torch.testing.assert_close(
            norm, reference_norm, rtol=1e-4, atol=0
        )  # float32 sums in another order (1.7M terms for the CNN)
        for parameter, expected in zip(agent.parameters(), reference.parameters()):
            torch.testing.assert_close(parameter, expected, rtol=1e-5, atol=1e-6)
            assert parameter.untyped_storage().data_ptr() == flat_params.untyped_storage().data_ptr()  # still views

    # The state dict is the usual one: a fresh agent loads it and computes the same values
    fresh = make_agent()
    fresh.load_state_dict(agent.state_dict())
    x = make_input()
    with torch.no_grad():
        torch.testing.assert_close(fresh.get_value(x), agent.get_value(x))


@pytest.mark.parametrize("script", ["ppo_discrete.py", "ppo_continuous.py", "ppo_atari.py"])
def test_the_scripts_clip_as_tested(script):
    """The clipping tested above is the scripts' own: its lines are in each script's update, in this order."""
    lines = [line.split("#")[0].strip() for line in (REPO / script).read_text().splitlines()]
    at = lines.index(CLIPPING[0])
    assert lines[at + 1] == CLIPPING[1]
    assert "clip_grad_norm_(" not in (REPO / script).read_text()  # no second, library clipping besides it


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_written_out_clipping_equals_clip_grad_norm(scale):
    """Below the threshold the gradient is unchanged, above it scaled to the threshold: bit for bit what
    torch.nn.utils.clip_grad_norm_ does to the same tensor, and the same norm returned."""
    torch.manual_seed(0)
    ours, library = nn.Parameter(torch.zeros(5000)), nn.Parameter(torch.zeros(5000))
    gradient = torch.randn(5000) * scale  # norm about 71 * scale
    ours.grad, library.grad = gradient.clone(), gradient.clone()
    norm = clip_as_the_scripts_do(ours, 0.5)
    library_norm = nn.utils.clip_grad_norm_(library, 0.5)
    assert torch.equal(norm, library_norm) and torch.equal(ours.grad, library.grad)
    if norm <= 0.5:
        assert torch.equal(ours.grad, gradient)
    else:
        torch.testing.assert_close(torch.linalg.vector_norm(ours.grad), torch.tensor(0.5))
