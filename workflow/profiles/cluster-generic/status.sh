#!/usr/bin/env bash
# Print running, success or failed for one SLURM job id (cluster-generic-status-cmd).
# squeue --states=all knows jobs until slurmctld forgets them (MinJobAge, 300 s by default);
# sacct knows them after that where accounting runs.
# Usage: status.sh JOBID
set -uo pipefail
jobid=$1
state=""
if out=$(squeue --noheader --states=all --format=%T --jobs="$jobid" 2>&1); then
    state=$(head -n1 <<<"$out")
elif [[ $out != *"Invalid job id"* ]]; then
    echo running # the controller is busy or unreachable: Snakemake asks again later
    exit 0
fi
if [ -z "$state" ]; then
    state=$(sacct --noheader --parsable2 --format=State --jobs="$jobid" 2>/dev/null | head -n1)
fi
case "${state%% *}" in
    COMPLETED) echo success ;;
    PENDING | CONFIGURING | RUNNING | COMPLETING | SUSPENDED | REQUEUED | REQUEUE_FED | \
        REQUEUE_HOLD | RESIZING | SIGNALING | STAGE_OUT | STOPPED) echo running ;;
    "")
        echo "status.sh: job $jobid is unknown to squeue and sacct" >&2
        echo failed
        ;;
    *) echo failed ;; # FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, ...
esac
