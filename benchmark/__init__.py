"""Benchmark tooling for the PPO scripts: run sweeps, collect their TensorBoard logs, compare with published numbers.

Modules, one job each:
    manifest   what a sweep is: its runs (script x env id x seed + extra arguments), their names and paths
    atomic     writing files so that a killed process never leaves half of one
    run_one    running one run of a sweep and recording its result (also the Slurm array task's entry point)
    local      the local backend: a pool of worker processes with live progress
    slurm      the Slurm backend: one `sbatch --array` job, and its state from squeue/scontrol
    status     the state of every run of a sweep, from result files and the Slurm queue
    sweep      the command line: `python -m benchmark.sweep ...` and `python -m benchmark.sweep status ...`
    events     reading scalars from TensorBoard event files
    curves     return curves: smoothing and putting seeds on a common step grid
    aggregate  per-run and per-(script, env) statistics, IQM with bootstrap confidence intervals (rliable)
    published  published reference numbers (published.csv) and matching them to our env ids
    tables     the markdown and CSV tables
    plots      learning curves and training diagnostics (PNG)
    report     the command line: `python -m benchmark.report --runs DIR --out DIR`
    ablations  the PPO paper's Table 1 on our scripts: `python -m benchmark.ablations --runs DIR --out DIR`
"""
