"""Each script reads as PPO from the top of the file to the end of main(), with the plumbing below it.

Read with ast: every top-level function or class above main() is one of the script's PPO pieces (options, networks,
normalization, the PPO functions); everything that runs the job is defined after main(), behind one banner. The line
budgets hold: main() at most 200 lines, the top of the file to the end of main() at most 500 / 575 / 640 lines, the
plumbing below main() at most 450 lines in each of the three scripts (597 / 630 in the seeds variants: the parent's
plumbing and the seed group's), and no line over 120 characters anywhere in the project's Python files.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What may come before main(): the algorithm. Anything else defined there fails the test.
PPO_PIECES = {
    "Args", "make_env", "layer_init", "Agent", "compute_gae", "clipped_surrogate_loss", "surrogate_loss",
    "kl_penalty_loss", "categorical_kl", "gaussian_kl", "update_kl_beta", "update_clip_coef", "value_loss",
    "kl_estimators", "explained_variance", "update_statistics",
    "RunningMeanStd", "normalize_obs", "RewardScaler",  # ppo_continuous.py: observation and reward normalization
    "EpisodicLife", "FireReset",  # ppo_atari.py: the Atari wrappers
    "BatchedAgent", "stack_linear_layers", "batched_mlp", "by_env", "seed_axis", "SeedAdam",  # ppo_*_seeds.py
}  # fmt: skip
# Last line of main(); ppo_continuous.py's normalizers carry their own state_dict() / load_state_dict() pair
BUDGETS = {"ppo_discrete.py": 500, "ppo_continuous.py": 575, "ppo_atari.py": 640}
# The seeds variants: the parent's budget plus the batched agent and Adam above main() and a longer main()
BUDGETS.update({"ppo_discrete_seeds.py": 660, "ppo_continuous_seeds.py": 755})
MAIN_BUDGETS = {"ppo_discrete_seeds.py": 240, "ppo_continuous_seeds.py": 240}  # 200 for the others
# Lines below main(): the plumbing that runs the job; a seeds variant's holds its parent's plus its N run directories,
# per-seed W&B runs and per-seed models
PLUMBING_BUDGETS = {"ppo_discrete.py": 450, "ppo_continuous.py": 450, "ppo_atari.py": 450}
PLUMBING_BUDGETS.update({"ppo_discrete_seeds.py": 597, "ppo_continuous_seeds.py": 630})
BANNER = "# Everything below runs the job, not PPO"


def layout_problems(source: str, budget: int, main_budget: int = 200, plumbing_budget: int = 10**6) -> list:
    """What breaks the layout in one script's source: plumbing above main(), a missing banner, a budget overrun."""
    tree = ast.parse(source)
    definitions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    names = [node.name for node in definitions]
    main = definitions[names.index("main")]
    problems = [
        f"{node.name} is defined above main()"
        for node in definitions[: names.index("main")]
        if node.name not in PPO_PIECES
    ]
    below = source.splitlines()[main.end_lineno :]
    if not any(line.startswith(BANNER) for line in below[:5]):
        problems.append("no banner right after main()")
    if main.end_lineno > budget:
        problems.append(f"main() ends at line {main.end_lineno}, over {budget}")
    if main.end_lineno - main.lineno + 1 > main_budget:
        problems.append(f"main() is {main.end_lineno - main.lineno + 1} lines, over {main_budget}")
    if len(below) > plumbing_budget:
        problems.append(f"{len(below)} lines below main(), over {plumbing_budget}")
    return problems


@pytest.mark.parametrize("script", list(BUDGETS))
def test_ppo_first_plumbing_below_main_within_budget(script):
    source = (REPO / script).read_text()
    assert layout_problems(source, BUDGETS[script], MAIN_BUDGETS.get(script, 200), PLUMBING_BUDGETS[script]) == []


def test_the_layout_check_can_fail():
    source = (REPO / "ppo_discrete.py").read_text()
    assert layout_problems(source, 500) == []
    moved = source.replace("def main(args: Args", "def load_thing():\n    pass\n\n\ndef main(args: Args")
    assert layout_problems(moved, 500) == ["load_thing is defined above main()"]
    assert layout_problems(source, 100) == [f"main() ends at line {ast_main_end(source)}, over 100"]
    assert "no banner right after main()" in layout_problems(source.replace(BANNER, "# other"), 500)
    below = len(source.splitlines()) - ast_main_end(source)
    assert layout_problems(source, 500, plumbing_budget=below - 1) == [f"{below} lines below main(), over {below - 1}"]


def ast_main_end(source: str) -> int:
    return next(node.end_lineno for node in ast.parse(source).body if getattr(node, "name", None) == "main")


def test_no_line_over_120_characters():
    files = [
        path for path in REPO.rglob("*.py") if not any(part.startswith(".") for part in path.relative_to(REPO).parts)
    ]
    long_lines = [
        f"{path.relative_to(REPO)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if len(line) > 120
    ]
    assert long_lines == []
