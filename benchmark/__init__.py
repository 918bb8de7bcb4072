"""Benchmark tooling for the PPO scripts: run sweeps, read their TensorBoard logs back, compare with published numbers.

Modules, one job each (README.md in this folder says how to use them):

Run sweeps (local and Slurm)
    sweep         the command line: `python -m benchmark.sweep ...` and `python -m benchmark.sweep status ...`
    manifest      what a sweep is: its runs (script x env id x seed + extra arguments) and jobs (what one process
                  trains: a run, or a batched script's seeds of one env id), their names and paths
    run_one       one attempt of one job, with its stop signals and resumption (also the Slurm array task)
    run_result    a run's result file (results/NAME.json in the sweep): complete, interrupted or failed
    local         the local backend: a pool of worker processes (a job each) with live progress
    slurm         the Slurm backend: one `sbatch --array` job, and its tasks' states from squeue/scontrol
    status        the state of every run of a sweep, from result files, job locks and the Slurm queue

Tune hyperparameters (Optuna; each trial a seed group)
    tune          the command line: `python -m benchmark.tune ...`, `... report`, `... validate`; trials, pruning,
                  storage, workers and Slurm array tasks
    space         a search space in the language of W&B sweep files, checked against a script's options
    tune_report   a study's report.md and figures, and the validation of a configuration on fresh seeds
    trial_cost    what a K-seed trial costs: one seeds-variant process against K one-seed runs in a row

Aggregate and report (tables, plots, curves)
    events        reading scalars from TensorBoard event files
    curves        return curves: trailing means and several seeds on a common step grid
    aggregate     per-run and per-(script, env id) statistics, IQM with bootstrap confidence intervals (rliable)
    published     published reference numbers (published.csv) and matching them to our env ids
    tables        the report's tables, as CSV rows and as markdown
    plots         learning-curve and training-diagnostic figures (PNG)
    report        the command line: `python -m benchmark.report --runs DIR --out DIR`
    ablations     the PPO paper's Table 1 on our scripts: `python -m benchmark.ablations --runs DIR --out DIR`
    diagnostics   ranges of the training diagnostics in committed runs

Measure throughput and phases
    throughput    steps per second of a script beside a straightforward PPO and beside its env alone
                  (--seeds-scaling: the batched seeds variants against their parent, run by a sweep)
    phases        where a script's training loop spends its time (env, inference, storage+GAE, update)
    reference     naive_ppo.py: the straightforward PPO that throughput measures against (not for results)

Helpers
    atomic        writing files so that a killed process never leaves half of one
    gif           turning an evaluation video into a small looping GIF

Folders: recipes/ (the commands behind each committed result), results/ (the committed reports),
slurm/ (the array task's batch script; a local one-node cluster for tests), wandb/ (W&B sweep configs),
evidence/ (data and scripts behind specific claims).
"""
