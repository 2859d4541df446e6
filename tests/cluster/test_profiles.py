"""The repository's cluster profiles against a real SLURM (the `slurm` fixture): the pipeline up
to results/perplexity.csv through workflow/profiles/slurm and workflow/profiles/cluster-generic,
every job a SLURM job given the rule's resources, a GPU job's submission, and a small tune
whose halving checkpoint unfolds the DAG between SLURM jobs.

Each profile runs as a test variant: the real config.yaml with absolute script paths and the
waits cut for a local file system. Both runs and a local one share the module, concurrently:
every SLURM job starts Snakemake, which dominates the time.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_workflow import BIN, EXPERIMENTS, SNAKEMAKE, write_config

from rnnlm.io import read_json

# One local SLURM (its ports, /etc/slurm): its tests share one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
PROFILES = REPO / "workflow" / "profiles"
TARGET = "results/perplexity.csv"  # vocab, batchify, train, evaluate, table: every kind of job
SUBMITTED = {"vocab": 1, "batchify": 3, "train": 1, "evaluate": 1, "table": 1}
TIMEOUT = 600  # seconds for one run
TUNE = {"base": "small", "trials": 3, "seed": 7, "rungs": [1, 2], "eta": 3, "seeds": [1, 2],
        "space": {"lr": {"log_uniform": [0.3, 3]}}}
TUNE_TARGETS = ["results/tunes/t.csv", "results/t/lstm/seed1/test.json",
                "results/t/lstm/seed2/test.json"]


def variant(name, folder):
    """The real profile `name`, runnable from any directory and quick on a local file system."""
    profile = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
    profile.update({"retries": 0, "latency-wait": 5})
    if name == "slurm":
        profile["slurm-partition-config"] = str(REPO / profile["slurm-partition-config"])
        profile["slurm-init-seconds-before-status-checks"] = 2
        profile["slurm-keep-successful-logs"] = True  # to see them; deleted by default
    else:
        for key in ("cluster-generic-submit-cmd", "cluster-generic-status-cmd"):
            profile[key] = profile[key].replace("workflow/profiles/", f"{PROFILES}/")
        profile["seconds-between-status-checks"] = 2
    folder = Path(folder) / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def start(workdir, *args):
    """A snakemake run in the background, its output in workdir/snakemake.{out,err}."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(workdir / "snakemake.out", "w") as out, open(workdir / "snakemake.err", "w") as err:
        return subprocess.Popen(
            [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
            stdout=out, stderr=err, env=env)


def finish(proc, workdir):
    """Wait for a run (killed after TIMEOUT); its exit code and stderr, where Snakemake logs."""
    try:
        code = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = f"nothing after {TIMEOUT} s"
    return code, (workdir / "snakemake.err").read_text()


@pytest.fixture(scope="module")
def runs(slurm, tiny_mirror, tmp_path_factory):
    """{name: (workdir, snakemake log)} for the two profiles and a local run of one small model,
    and a small tune through the slurm profile."""
    root = tmp_path_factory.mktemp("runs")
    started = {}
    for name in ("slurm", "cluster-generic", "local"):
        workdir = write_config(root / name, *tiny_mirror, run=["small"], modes=["lstm"])
        args = ["--cores", "1"] if name == "local" else [
            "--workflow-profile", str(variant(name, root / "profiles")), "--verbose"]
        started[name] = (workdir, start(workdir, *args, TARGET))
    workdir = write_config(root / "tune", *tiny_mirror, run=["t"], modes=["lstm"],
                           experiments={"small": EXPERIMENTS["small"]}, tunes={"t": TUNE})
    started["tune"] = (workdir, start(workdir, "--workflow-profile", str(root / "profiles/slurm"),
                                      "--verbose", *TUNE_TARGETS))
    done = {name: (workdir, *finish(proc, workdir)) for name, (workdir, proc) in started.items()}
    for name, (workdir, code, log) in done.items():
        if code != 0:
            pytest.fail(f"{name} run in {workdir} exited {code}:\n{log[-6000:]}")
    return {name: (workdir, log) for name, (workdir, _, log) in done.items()}


def jobs_of(log):
    """{snakemake job id: (rule, threads, {resource: value})} of the cluster jobs in a log."""
    jobs = {}
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n)+)", log, re.M):
        fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
        resources = dict(item.split("=", 1) for item in fields["resources"].split(", "))
        jobs[fields["jobid"]] = (rule, int(fields.get("threads", 1)), resources)
    return jobs


def slurm_record(jobid):
    """`scontrol show job` as a dict: what slurmctld recorded (it keeps it for MinJobAge)."""
    out = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True,
                         check=True).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", out))


def minutes(limit):
    """SLURM's [D-]HH:MM:SS as minutes."""
    days, _, clock = limit.rpartition("-")
    hours, mins, _ = map(int, clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + mins


def check_slurm_jobs(submitted, log, partitions):
    """Every cluster job ran as one completed SLURM job with the rule's threads, memory and
    runtime; `submitted` maps snakemake job ids to SLURM job ids."""
    jobs = jobs_of(log)
    assert set(submitted) == set(jobs)
    rules = [rule for rule, _, _ in jobs.values()]
    assert {rule: rules.count(rule) for rule in rules} == SUBMITTED
    assert len(set(submitted.values())) == len(submitted)
    for jobid, slurm_id in submitted.items():
        rule, threads, resources = jobs[jobid]
        record = slurm_record(slurm_id)
        assert record["JobState"] == "COMPLETED", (rule, record)
        assert record["Partition"] == partitions[rule]
        assert record["CPUs/Task"] == str(threads)
        assert record["MinMemoryNode"] == f"{resources['mem_mb']}M"
        assert minutes(record["TimeLimit"]) == int(resources["runtime"])


def test_results_through_either_profile_have_the_shape_of_a_local_run(runs):
    local = pd.read_csv(runs["local"][0] / TARGET)
    assert list(local["mode"]) == ["lstm"] and local["test_ppl_mean"].between(1, 30).all()
    for name in ("slurm", "cluster-generic"):
        table = pd.read_csv(runs[name][0] / TARGET)
        assert list(table.columns) == list(local.columns), name
        assert table[["experiment", "mode"]].equals(local[["experiment", "mode"]]), name
        assert table["test_ppl_mean"].between(1, 30).all(), name


def test_slurm_profile_runs_every_job_as_a_slurm_job_with_the_rule_resources(runs):
    workdir, log = runs["slurm"]
    lines = re.findall(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.*)\)\.$",
                       log, re.M)
    check_slurm_jobs({job: slurm_id for job, slurm_id, _ in lines}, log,
                     partitions=dict.fromkeys(SUBMITTED, "cpu"))
    # the flags themselves, in the plugin's sbatch call (logged with --verbose), by log folder
    calls = {Path(m[1]).parent: m[0] for m in re.findall(
        r"^sbatch call: (sbatch .*?--output '?(\S+?)'? .*)$", log, re.M)}
    jobs = jobs_of(log)
    for job, _, logfile in lines:
        _, threads, resources = jobs[job]
        call = calls[Path(logfile).parent]
        assert f"-p cpu -t {resources['runtime']} " in call
        assert f" --mem {resources['mem_mb']} " in call
        assert f" --cpus-per-task={threads} " in call
        assert Path(logfile).is_file()  # the job's output: .snakemake/slurm_logs/rule_*/
        assert Path(logfile).is_relative_to(workdir / ".snakemake/slurm_logs")
    # status from squeue: without accounting, sacct would leave the run waiting forever
    assert "command=squeue" in log and "command=sacct" not in log


def test_cluster_generic_profile_runs_every_job_as_a_slurm_job_with_the_rule_resources(runs):
    workdir, log = runs["cluster-generic"]
    submitted = dict(re.findall(r"^Submitted job (\d+) with external jobid '(\d+)'\.$", log,
                                re.M))
    check_slurm_jobs(submitted, log, partitions=dict.fromkeys(SUBMITTED, "cpu"))
    jobs = jobs_of(log)
    for job, slurm_id in submitted.items():
        assert (workdir / f"results/logs/cluster/{jobs[job][0]}-{slurm_id}.log").is_file()


@pytest.mark.parametrize("name", ["slurm", "cluster-generic"])
def test_gpu_training_is_submitted_with_its_gpus(runs, tmp_path, name):
    """The local node has no GPU, so sbatch rejects the job; the slurm plugin's error shows the
    whole call (cluster-generic's submit.sh flags are checked in tests/test_workflow.py)."""
    workdir = tmp_path / "gpu"
    shutil.copytree(runs[name][0], workdir)
    proc = start(workdir, "--workflow-profile", str(variant(name, tmp_path)), "--verbose",
                 "--config", "device=gpu", "gpus=1", "threads=2", "--forcerun", "train",
                 "--until", "train")
    code, log = finish(proc, workdir)
    assert code == 1
    assert "Invalid generic resource (gres) specification" in log, log[-4000:]
    if name == "cluster-generic":
        assert "Error submitting jobscript" in log
        return
    failed = re.search(r"SLURM sbatch failed\. The error message was '(.*?)'\.\n\s+sbatch call:"
                       r"\n\s+(sbatch .*)", log)
    assert failed, log[-4000:]
    error, call = failed.groups()
    assert "Invalid generic resource (gres) specification" in error
    assert "--comment rule_train_wildcards_small_lstm" in call
    assert " -p gpu " in call and " --gpus=1 " in call
    assert " --cpus-per-task=2 " in call


def test_a_tune_runs_every_trial_rung_and_final_run_as_a_slurm_job(runs):
    workdir, log = runs["tune"]
    # job ids repeat once the halving checkpoint re-plans, so count the rules and SLURM ids
    rules = re.findall(r"^(?:rule|checkpoint) (\w+):\n", log, re.M)  # not "localrule"
    assert {rule: rules.count(rule) for rule in set(rules)} == {
        "vocab": 1, "batchify": 3, "trial": 3 + 1, "halving": 2, "tune_table": 1, "train": 1,
        "evaluate": 2}  # seed 1's final run is the chosen trial's: shared here, not a SLURM job
    assert len(re.findall(r"^localrule share:\n", log, re.M)) == 1
    submitted = re.findall(r"^Job \d+ has been submitted with SLURM jobid (\d+) ", log, re.M)
    assert len(set(submitted)) == len(submitted) == len(rules)  # each job a SLURM job
    for slurm_id in submitted:
        assert slurm_record(slurm_id)["JobState"] == "COMPLETED"
    table = pd.read_csv(workdir / TUNE_TARGETS[0])
    assert list(table.groupby("rung").size()) == [3, 1]
    chosen = table[table["chosen"]]
    assert len(chosen) == 1 and chosen["rung"].item() == 2
    trial = f"results/t/trial~{chosen['trial'].item()}/epochs~2/lstm/seed1"
    assert read_json(workdir / "results/t/lstm/seed1/summary.json")["shared_from"] == trial
    assert "shared_from" not in read_json(workdir / "results/t/lstm/seed2/summary.json")
