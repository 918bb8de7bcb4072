"""The three scripts share their algorithm line for line; this test fails when a shared block drifts.

Shared: every top-level function present in more than one script (except those listed in
MAY_DIFFER_FUNCTIONS, which hold the real differences; a script may lack only those listed for it in
MAY_LACK_FUNCTIONS), the Args fields of ppo_discrete.py (same names,
same order, same docstrings except where listed), and every banner-delimited section of main()
(`# --- Name ... ---`) except the sections a script lists in MAY_DIFFER_SECTIONS.
"""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ["ppo_discrete.py", "ppo_continuous.py", "ppo_atari.py"]
# Functions and classes that are the real differences between the scripts (ResumableEnv: each saves its env families).
MAY_DIFFER_FUNCTIONS = {"check_env", "make_env", "Agent", "evaluate", "main", "Args", "ResumableEnv"}
# Functions of ppo_discrete.py that a script does without, per script: its policy is another distribution.
MAY_LACK_FUNCTIONS = {"ppo_continuous.py": {"categorical_kl"}}
# main() sections that hold real differences, per script (compared against ppo_discrete.py).
MAY_DIFFER_SECTIONS = {
    "ppo_continuous.py": {"Environments", "Storage", "Rollout"},
    "ppo_atari.py": {"Environments", "Storage", "Rollout"},
}
# Args fields whose docstring may differ (their meaning is script specific).
MAY_DIFFER_FIELDS = {"env_id", "torch_threads"}
BANNER = re.compile(r"^\s*#\s*-{3,}\s*(.+?)\s*-{3,}\s*$")


def top_level_blocks(source: str) -> dict:
    """{name: source text} of the module's top-level functions and classes."""
    lines = (
        source.splitlines()
    )  # top-level blocks start at column 0: whole lines (get_source_segment re-splits per node)
    nodes = [node for node in ast.parse(source).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    return {node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno]) for node in nodes}


def main_sections(source: str) -> dict:
    """{section name: lines} of main(), split at banner comments; the name is the banner text up to ':' or ','."""
    main_source = top_level_blocks(source)["main"]
    sections, name = {"Setup": []}, "Setup"
    for line in main_source.splitlines()[1:]:
        match = BANNER.match(line)
        if match:
            name = re.split(r"[:,]", match.group(1))[0].strip()
            assert name not in sections, f"two main() sections named {name!r}"
            sections[name] = []
        else:
            sections[name].append(line)
    return sections


def args_fields(source: str) -> list:
    """[(field name, docstring)] of the Args dataclass, in order."""
    args = next(node for node in ast.parse(source).body if isinstance(node, ast.ClassDef) and node.name == "Args")
    fields = []
    for statement, following in zip(args.body, args.body[1:] + [None]):
        if isinstance(statement, ast.AnnAssign):
            docstring = (
                following.value.value
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                else None
            )
            fields.append((statement.target.id, docstring))
    return fields


def drift(reference: str, other: str, other_name: str) -> list:
    """Human-readable list of the shared blocks that differ between two scripts' sources."""
    problems = []
    reference_blocks, other_blocks = top_level_blocks(reference), top_level_blocks(other)
    for name, text in reference_blocks.items():
        if name in MAY_DIFFER_FUNCTIONS:
            continue
        if name not in other_blocks:
            if name not in MAY_LACK_FUNCTIONS.get(other_name, set()):
                problems.append(f"{name} is missing")
        elif other_blocks[name] != text:
            problems.append(f"{name} differs")
    reference_fields, other_fields = args_fields(reference), dict(args_fields(other))
    other_order = [name for name, _ in args_fields(other) if name in dict(reference_fields)]
    if other_order != [name for name, _ in reference_fields if name in other_fields]:
        problems.append("Args fields are in another order")
    for name, docstring in reference_fields:
        if name not in other_fields:
            problems.append(f"Args.{name} is missing")
        elif name not in MAY_DIFFER_FIELDS and other_fields[name] != docstring:
            problems.append(f"Args.{name} docstring differs")
    reference_sections, other_sections = main_sections(reference), main_sections(other)
    if list(reference_sections) != list(other_sections):
        problems.append(f"main() sections differ: {list(reference_sections)} vs {list(other_sections)}")
    for name, lines in reference_sections.items():
        if name in MAY_DIFFER_SECTIONS.get(other_name, set()):
            continue
        if other_sections.get(name) != lines:
            problems.append(f"main() section {name!r} differs")
    return problems


@pytest.mark.parametrize("script", [name for name in SCRIPTS[1:]])
def test_shared_blocks_are_identical(script):
    reference = (REPO / "ppo_discrete.py").read_text()
    problems = drift(reference, (REPO / script).read_text(), script)
    assert not problems, f"{script} drifted from ppo_discrete.py: " + "; ".join(problems)


def test_the_checker_sees_drift():
    """The comparison itself can fail: a one-character change in a shared function or section is caught."""
    reference = (REPO / "ppo_discrete.py").read_text()
    assert drift(reference, reference, "ppo_continuous.py") == []
    changed_function = reference.replace("advantages[..., t, :] = lastgaelam", "advantages[..., t, :] = lastgaelam * 1")
    assert drift(reference, changed_function, "ppo_continuous.py") == ["compute_gae differs"]
    changed_section = reference.replace("loss.backward()", "loss.backward()  # changed")
    assert drift(reference, changed_section, "ppo_continuous.py") == ["main() section 'Update' differs"]
    changed_field = reference.replace('"""discount factor (gamma)"""', '"""discount"""')
    assert drift(reference, changed_field, "ppo_continuous.py") == ["Args.gamma docstring differs"]
    without_kl = reference.replace("def categorical_kl(", "def renamed_kl(")
    assert drift(reference, without_kl, "ppo_continuous.py") == []  # listed in MAY_LACK_FUNCTIONS
    assert drift(reference, without_kl, "ppo_atari.py") == ["categorical_kl is missing"]
    changed_allowed = reference.replace("obs[step] = next_obs", "obs[step] = next_obs  # allowed")
    assert drift(reference, changed_allowed, "ppo_continuous.py") == []
    assert drift(reference, changed_allowed, "ppo_discrete.py") == ["main() section 'Rollout' differs"]


def test_main_sections_cover_the_algorithm():
    sections = main_sections((REPO / "ppo_discrete.py").read_text())
    assert list(sections) == [
        "Setup",
        "Seeding",
        "Environments",
        "Storage",
        "Resume",
        "Tracking",
        "Rollout",
        "Advantages",
        "Update",
        "Logging",
        "Checkpoint",
        "Finish",
    ]


# The seeds variants against their parents: a block of the same name is the parent's line for line, except those
# that batching seeds changes (what `diff ppo_continuous.py ppo_continuous_seeds.py` shows); the parent's other
# blocks must all be there. Args: the same fields, docstrings and order, --seeds in place of --seed.
VARIANTS = {"ppo_continuous_seeds.py": "ppo_continuous.py", "ppo_discrete_seeds.py": "ppo_discrete.py"}
BATCHING_CHANGES = {
    "Args", "main", "update_statistics", "check_args", "resolve_args", "start_tracking", "TrainingLoop",
    "write_atomically", "load_checkpoint", "resume_run", "evaluate_checkpoint", "flatten_parameters",
}  # fmt: skip
SEED_FIELDS = {"seed": "seeds"}


def variant_drift(parent: str, variant: str) -> list:
    problems = []
    parent_blocks, variant_blocks = top_level_blocks(parent), top_level_blocks(variant)
    for name, text in parent_blocks.items():
        if name in BATCHING_CHANGES:
            continue
        if name not in variant_blocks:
            problems.append(f"{name} is missing")
        elif variant_blocks[name] != text:
            problems.append(f"{name} differs")
    parent_fields = [(SEED_FIELDS.get(name, name), doc) for name, doc in args_fields(parent)]
    variant_fields = args_fields(variant)
    if [name for name, _ in parent_fields] != [name for name, _ in variant_fields]:
        problems.append("Args fields differ")
    for (name, parent_doc), (_, variant_doc) in zip(parent_fields, variant_fields):
        if name not in ("seeds", "run_name") and parent_doc != variant_doc:
            problems.append(f"Args.{name} docstring differs")
    if list(main_sections(parent)) != list(main_sections(variant)):
        problems.append("main() sections differ")
    return problems


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_seeds_variants_keep_their_parents_blocks(variant):
    parent = (REPO / VARIANTS[variant]).read_text()
    assert variant_drift(parent, (REPO / variant).read_text()) == []
    shared = set(top_level_blocks(parent)) - BATCHING_CHANGES
    assert {"compute_gae", "clipped_surrogate_loss", "value_loss", "kl_estimators", "Agent", "evaluate"} <= shared


def test_the_variant_checker_sees_drift():
    parent = (REPO / "ppo_continuous.py").read_text()
    variant = (REPO / "ppo_continuous_seeds.py").read_text()
    changed = variant.replace(
        "return -torch.min(unclipped, clipped).mean(dim=-1)", "return -torch.min(unclipped, clipped).mean()"
    )
    assert variant_drift(parent, changed) == ["clipped_surrogate_loss differs"]
    assert variant_drift(parent, variant.replace('"""discount factor (gamma)"""', '"""gamma"""')) == [
        "Args.gamma docstring differs"
    ]
