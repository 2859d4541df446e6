"""A failed SLURM job is resubmitted with more time and training resumes from its checkpoint
(`retries: 2` in workflow/profiles/slurm, `runtime` growing with the attempt in the train rule).

The data stages run locally first; then only `train` goes to the `slurm` fixture's cluster. Its
first attempt is cancelled (`scancel`: SIGTERM, as at a time limit) once epoch 1 is
checkpointed; the retry must resume there and finish, under a larger time limit. About 2 min
here: two Snakemake starts in SLURM jobs, and the plugin's status checks (2 s apart at first,
then 10 s longer each time).
"""

import re
import subprocess
import time

import pytest
import yaml
from faults.pipeline import metrics_epochs, prepare_data, read_checkpoint, tiny_workflow

from cluster.test_profiles import PROFILES, finish, minutes, slurm_record, start, variant

# One local SLURM (its ports, /etc/slurm): its tests share one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
RUN = "results/tiny/lstm/seed1"
EPOCHS = 60  # 0.2-0.3 s each here: the cancel lands long before the last one


def with_real_retries(folder):
    """The slurm profile's test variant, with the retries of the real profile (2)."""
    profile = variant("slurm", folder)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["retries"] = yaml.safe_load((PROFILES / "slurm/config.yaml").read_text())["retries"]
    (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return profile


def slurm_job_of(rule, workdir, timeout=300):
    """The SLURM id of the queued or running job of ``rule`` (the plugin's comment names it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "--noheader", "--format=%i %k"], capture_output=True,
                               text=True).stdout
        ids = [job for job, comment in (line.split(" ", 1) for line in queue.splitlines())
               if comment.startswith(f"rule_{rule}_")]
        if ids:
            return ids[0]
        time.sleep(0.2)
    pytest.fail(f"no SLURM job of rule {rule} after {timeout} s:\n"
                f"{(workdir / 'snakemake.err').read_text()[-3000:]}")


def wait_for_epoch_1_checkpoint(proc, workdir, timeout=300):
    deadline = time.monotonic() + timeout
    while (read_checkpoint(workdir / RUN) or {"state": {"epoch": 1}})["state"]["epoch"] < 2:
        assert proc.poll() is None, (workdir / "snakemake.err").read_text()[-3000:]
        assert time.monotonic() < deadline, f"no checkpoint of epoch 1 after {timeout} s"
        time.sleep(0.1)


def test_a_cancelled_training_job_is_resubmitted_with_more_time_and_resumes(slurm, tmp_path,
                                                                           tiny_mirror):
    workdir = prepare_data(tiny_workflow(tmp_path / "work", *tiny_mirror, epochs=EPOCHS))
    proc = start(workdir, "--workflow-profile", str(with_real_retries(tmp_path)), "--verbose",
                 "train_all")
    try:
        first = slurm_job_of("train", workdir)
        wait_for_epoch_1_checkpoint(proc, workdir)
        subprocess.run(["scancel", first], check=True)
        code, log = finish(proc, workdir)
    finally:  # a failed wait leaves no Snakemake polling a cluster that is about to stop
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log[-6000:]
    submitted = re.findall(r"^Job \d+ has been submitted with SLURM jobid (\d+) ", log, re.M)
    assert submitted[0] == first and len(submitted) == 2, submitted  # train, then its retry
    # what Snakemake asked for each attempt, and what SLURM recorded
    asked = [int(minutes) for minutes in re.findall(
        r"^rule train:\n(?:    .*\n)*?    resources: .*\bruntime=(\d+)\b", log, re.M)]
    records = [slurm_record(job) for job in submitted]
    assert [r["JobState"] for r in records] == ["CANCELLED", "COMPLETED"], records
    limits = [minutes(r["TimeLimit"]) for r in records]
    assert limits == asked and limits[1] > limits[0], (limits, asked)
    # the retry trained on from the checkpoint: no epoch twice, no checkpoint left
    train_log = (workdir / "results/logs/train/tiny/lstm/seed1.log").read_text()
    resumed = re.search(rf"resuming from {RUN}/checkpoint: epoch (\d+) after \d+ of ", train_log)
    assert resumed and int(resumed.group(1)) >= 2, train_log[-3000:]
    assert "end of epoch   1 " not in train_log
    assert metrics_epochs(workdir / RUN / "metrics.csv") == list(range(1, EPOCHS + 1))
    assert not (workdir / RUN / "checkpoint").exists()
