#!/bin/bash
# One task of a benchmark sweep's Slurm array job: runs entry $SLURM_ARRAY_TASK_ID of the sweep's manifest.
#
# Submitted by `python -m benchmark.sweep --backend slurm ...` as
#     sbatch [options] benchmark/slurm/array_task.sh PYTHON MANIFEST
# This text is fixed: its only inputs are the two arguments and SLURM_ARRAY_TASK_ID, each passed on as one
# argument. The run's own command is built from the manifest by benchmark.run_one, as an argument list.
exec "$1" -m benchmark.run_one "$2" "$SLURM_ARRAY_TASK_ID"
