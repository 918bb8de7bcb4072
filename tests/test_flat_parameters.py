"""flatten_parameters: the agent's parameters and gradients as views of one flat tensor, so that Adam and gradient
clipping run on one tensor. Checked against the plain per-tensor optimizer step and torch's clip_grad_norm_ over the
list of parameters, an independent computation, and through each script's own update: one Adam step of a real run
moves the parameters by what a gradient clipped to the global norm --max-grad-norm gives."""

import copy
import io

import pytest
import torch
import torch.nn as nn

import ppo_atari
import ppo_continuous
import ppo_discrete
from tests.conftest import read_scalars, run_script

# (module, agent constructor, a batch of inputs the agent takes)
AGENTS = {
    "discrete": (ppo_discrete, lambda: ppo_discrete.Agent(4, 2), lambda: torch.randn(16, 4)),
    "continuous": (ppo_continuous, lambda: ppo_continuous.Agent(3, 2), lambda: torch.randn(16, 3)),
    "atari": (ppo_atari, lambda: ppo_atari.Agent(4), lambda: torch.randint(0, 256, (4, 4, 84, 84), dtype=torch.uint8)),
}


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
    # ... and the views tile it: each parameter's memory is its own slice of the flat tensor's, in order, no gaps
    element = flat_params.element_size()
    spans = [
        (parameter.data_ptr(), parameter.data_ptr() + parameter.numel() * element) for parameter in agent.parameters()
    ]
    assert spans[0][0] == flat_params.data_ptr() and spans[-1][1] == flat_params.data_ptr() + flat_params.nbytes
    assert all(end == next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
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

    # The state dict is the usual one: saved and loaded back it holds the agent's values under a fresh agent's keys
    # and shapes, and a fresh agent loads it and computes the same values
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh = make_agent()
    assert {key: value.shape for key, value in saved.items()} == {
        key: value.shape for key, value in fresh.state_dict().items()
    }
    assert all(torch.equal(saved[key], value) for key, value in agent.state_dict().items())
    fresh.load_state_dict(saved)
    x = make_input()
    with torch.no_grad():
        torch.testing.assert_close(fresh.get_value(x), agent.get_value(x))


# One iteration of one minibatch and one epoch, so that the run makes exactly one Adam step
ONE_STEP = ("--total-timesteps", "128", "--num-envs", "2", "--num-steps", "64", "--num-minibatches", "1")
ONE_STEP += ("--update-epochs", "1", "--checkpoint-every", "1", "--progress-interval", "0", "--torch-threads", "1")
ADAM_EPS = 1e-5  # the scripts' Adam eps


@pytest.mark.parametrize("script", ["ppo_discrete.py", "ppo_continuous.py", "ppo_atari.py"])
def test_the_scripts_adam_step_on_the_globally_clipped_gradient(script, tmp_path):
    """Adam's first step moves each parameter by lr * g / (|g| + eps), g the clipped gradient. With the gradient
    clipped to a global norm c far below eps, the parameters of a real run move by a vector of norm between
    lr * c / (c + eps) and lr * c / eps: clipping per tensor would give up to sqrt(tensors) times that, no clipping
    or clipping after the step about lr * sqrt(parameters). The start is a run whose step is 1e-30 long."""
    max_grad_norm, learning_rate = 1e-7, 1.0
    models = {}
    for name, lr in (("start", "1e-30"), ("stepped", str(learning_rate))):
        result = run_script(
            script, *ONE_STEP, "--learning-rate", lr, "--max-grad-norm", str(max_grad_norm),
            "--output-dir", str(tmp_path), "--run-name", name,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        models[name] = torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["model"]
    (_, grad_norm), *_ = read_scalars(tmp_path / "stepped")["losses/grad_norm"]
    assert grad_norm > 100 * max_grad_norm  # the logged norm is the one before clipping, and clipping was active
    start, stepped = models["start"], models["stepped"]
    assert start.keys() == stepped.keys()
    moved = torch.linalg.vector_norm(torch.cat([(stepped[key] - start[key]).flatten() for key in start]).double())
    low, high = learning_rate * max_grad_norm / (max_grad_norm + ADAM_EPS), learning_rate * max_grad_norm / ADAM_EPS
    assert low * (1 - 1e-3) <= moved <= high * (1 + 1e-3), (moved, low, high)


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
