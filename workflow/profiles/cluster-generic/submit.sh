#!/usr/bin/env bash
# Submit one Snakemake job script to SLURM; print the job id (cluster-generic-submit-cmd).
# Usage: submit.sh RULE THREADS MEM_MB RUNTIME_MINUTES GPUS CPU_PARTITION GPU_PARTITION JOBSCRIPT
set -euo pipefail
rule=$1 threads=$2 mem_mb=$3 runtime=$4 gpus=$5 partition=$6 gpu_partition=$7 jobscript=$8
logdir=results/logs/cluster
mkdir -p "$logdir"
args=(--parsable --job-name="smk-$rule" --cpus-per-task="$threads" --mem="${mem_mb}M"
      --time="$runtime" --output="$logdir/$rule-%j.log")
# CPU jobs ask for no GPU at all (a gpu gres on a cluster without GPUs is an error) and go to
# the CPU partition.
if [ "$gpus" -gt 0 ]; then
    args+=(--partition="$gpu_partition" --gpus="$gpus")
else
    args+=(--partition="$partition")
fi
# --parsable prints "jobid" or "jobid;cluster": keep the id.
sbatch "${args[@]}" "$jobscript" | cut -d';' -f1
