"""The Snakemake workflow through the real `snakemake` command, on a generated corpus served as a
file:// mirror: job plans, a full run, reruns, the report, config errors, lint, profiles."""

import argparse
import ast
import base64
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from rnnlm.cli import build_parser
from rnnlm.mx import BUILD
from rnnlm.provenance import code_digest, code_files

BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
MODES = ["rnn_relu", "rnn_tanh", "lstm", "gru"]
EXPERIMENTS = {  # two, so a change to one can be seen to leave the other alone
    "small": {"emsize": 8, "nhid": 8, "nlayers": 1, "epochs": 2, "batch_size": 4,
              "eval_batch_size": 2, "bptt": 4},
    "wide": {"emsize": 12, "nhid": 12, "nlayers": 1, "epochs": 1, "batch_size": 8,
             "eval_batch_size": 2, "bptt": 4},
}
RUNS = [(e, m) for e in EXPERIMENTS for m in MODES]
PLOTS = ["learning_curves.small.png", "learning_curves.wide.png", "test_ppl.png",
         "throughput.png"]
PROMPTS = {"prompts": ["w1 w2", "w3"], "top_k": 3}
TABLES = ["runs", "perplexity", "comparisons", "provenance"]  # each as .csv and .html
ALL_JOBS = {"download": 1, "vocab": 1, "batchify": 4, "train": 8, "evaluate": 8, "predict": 8,
            "compare_predictions": 1, "table": 1, "compare": 1, "provenance": 1, "plots": 1,
            "all": 1}  # batchify: train.b4, train.b8, valid.b2, test.b2
AFTER_EVALUATE = {"table": 1, "compare": 1, "plots": 1, "all": 1}
AFTER_TRAIN = {"evaluate": 8, "predict": 8, "compare_predictions": 1, "provenance": 1,
               **AFTER_EVALUATE}


def snakemake(workdir, *args, snakefile=REPO / "Snakefile", check=True, first_on_path=BIN):
    """Run the real snakemake on the repository's (or another) Snakefile in `workdir`."""
    path = os.pathsep.join(map(str, [first_on_path, BIN, os.environ.get("PATH", "")]))
    env = {**os.environ, "PATH": path}
    result = subprocess.run(
        [str(SNAKEMAKE), "-s", str(snakefile), "--directory", str(workdir), *args],
        capture_output=True, text=True, env=env, timeout=1200)
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} exited {result.returncode}:\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def planned(workdir, *args, **kwargs):
    """{rule: job count} of a dry run; {} when there is nothing to be done."""
    result = snakemake(workdir, "--dry-run", *args, **kwargs)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = re.search(r"Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s", text, re.S)
    assert table, text[-3000:]
    return {rule: int(n) for rule, n in (line.split() for line in table.group(1).splitlines())}


def ptb_mirror(mirror, digests):
    """The `corpora` entry that makes a generated mirror PTB's source."""
    return {"ptb": {"url": mirror.as_uri(),
                    "digests": {split: f"sha256:{digest}" for split, digest in digests.items()}}}


def write_config(workdir, mirror, digests, **overrides):
    config = {"corpora": ptb_mirror(mirror, digests), "modes": MODES,
              "run": list(EXPERIMENTS), "experiments": EXPERIMENTS, "threads": 1,
              "predict": PROMPTS, **overrides}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


@pytest.fixture(scope="module")
def mirror(tiny_mirror):
    return tiny_mirror


@pytest.fixture(scope="module")
def fresh(mirror, tmp_path_factory):
    """A working directory holding only config.yaml: nothing has run there."""
    return write_config(tmp_path_factory.mktemp("fresh"), *mirror)


@pytest.fixture(scope="module")
def done(mirror, tmp_path_factory):
    """A working directory after one full `snakemake --cores 2`, shared by the tests below."""
    workdir = write_config(tmp_path_factory.mktemp("done"), *mirror)
    snakemake(workdir, "--cores", "2")
    return workdir


def test_dry_run_lists_exactly_the_expected_jobs(fresh):
    assert planned(fresh) == ALL_JOBS


@pytest.mark.slow
def test_full_run_writes_every_output_with_sane_contents(done):
    for split in ("train", "valid", "test"):
        assert (done / f"resources/ptb/{split}.txt").is_file()
    vocab = pd.read_csv(done / "results/data/ptb/vocab.tsv", sep="\t", keep_default_na=False)
    assert {"<unk>", "<eos>"} <= set(vocab["word"]) and len(vocab) == 21
    assert json.loads((done / "results/data/ptb/stats.json").read_text())["vocab_size"] == 21
    for array in ("train.b4", "train.b8", "valid.b2", "test.b2"):
        assert (done / f"results/data/ptb/{array}.npy").is_file()
    for experiment, mode in RUNS:
        run = done / "results" / experiment / mode / "seed1"
        for name in ("model.params", "model.json", "metrics.csv", "progress.csv", "summary.json",
                     "test.json", "predictions.json"):
            assert (run / name).is_file(), run / name
        assert not (run / "checkpoint").exists()  # kept only while a run is incomplete
        metrics = pd.read_csv(run / "metrics.csv")
        assert len(metrics) == EXPERIMENTS[experiment]["epochs"]
        assert (done / f"results/logs/train/{experiment}/{mode}/seed1.log").stat().st_size > 0
        for rule in ("train", "evaluate", "predict"):
            assert (done / f"results/benchmarks/{rule}/{experiment}/{mode}/seed1.tsv").is_file()
        predictions = json.loads((run / "predictions.json").read_text())
        assert (predictions["experiment"], predictions["mode"]) == (experiment, mode)
        assert (predictions["corpus"], predictions["vocab_size"]) == ("ptb", 21)
        assert [p["prompt"] for p in predictions["predictions"]] == PROMPTS["prompts"]
        for record in predictions["predictions"]:
            probs = [top["prob"] for top in record["top"]]
            assert len(probs) == PROMPTS["top_k"] and probs == sorted(probs, reverse=True)
    table = pd.read_csv(done / "results/perplexity.csv")
    assert list(zip(table["experiment"], table["mode"], strict=True)) == RUNS
    assert (table["n"] == 1).all() and table["test_ppl_sd"].isna().all()  # one seed: no spread
    assert table[["param_count", "epochs_mean", "train_seconds_mean", "wall_seconds_mean",
                  "tokens_per_s_mean"]].gt(0).all().all()
    # 21 words: uniform guessing scores 21; a trained model a little better
    assert table["test_ppl_mean"].between(1, 30).all()
    assert table["best_valid_ppl_mean"].between(1, 30).all()
    runs = pd.read_csv(done / "results/runs.csv")
    assert list(zip(runs["experiment"], runs["mode"], runs["seed"], strict=True)) == [
        (e, m, 1) for e, m in RUNS]
    assert (runs["wall_seconds"] > runs["train_seconds"]).all()
    assert "No test is possible" in (done / "results/comparisons.md").read_text()
    provenance = pd.read_csv(done / "results/provenance.csv")
    assert len(provenance) == len(RUNS) and (provenance["mxnet"] == "1.9.1").all()
    assert sorted(p.name for p in (done / "results/plots").iterdir()) == sorted(PLOTS)
    for name in PLOTS:
        assert (done / "results/plots" / name).read_bytes().startswith(b"\x89PNG")
    compared = (done / "results/predictions.md").read_text()
    for prompt in PROMPTS["prompts"]:  # one table per prompt, a column per run, a row per rank
        table = compared.split(f"### `{prompt}`")[1].split("###")[0]
        rows = [line for line in table.splitlines() if line.startswith("|")]
        assert len(rows) == 2 + PROMPTS["top_k"] and rows[0].count("|") == 2 + len(RUNS)
    for name in TABLES:
        for suffix in ("csv", "html"):
            assert (done / f"results/{name}.{suffix}").is_file()
    for log in ("download/ptb", "vocab/ptb", "table", "compare", "provenance", "plots",
                "compare_predictions"):
        assert (done / f"results/logs/{log}.log").is_file()
        assert (done / f"results/benchmarks/{log}.tsv").is_file()


@pytest.mark.slow
def test_finished_run_has_nothing_to_do_even_for_another_mirror_or_thread_count(done):
    assert planned(done) == {}
    # where the data come from and how many threads a job gets change no result
    assert planned(done, "--config", "corpora={ptb: {url: file:///elsewhere}}", "threads=2") == {}


def files_as_they_are(workdir):
    """{file: (bytes, mtime)} of everything the workflow wrote (Snakemake's own records aside)."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for top in ("results", "resources")
            for p in sorted((workdir / top).rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_an_integral_float_for_an_integer_key_is_the_finished_run(done, tmp_path):
    """2.0 for an integer key is 2: the finished runs stand, nothing is run or rewritten."""
    work = shutil.copytree(done, tmp_path / "work", symlinks=True)
    before = files_as_they_are(work)
    assert planned(work, "--config", "experiments={small: {seeds: [1.0], batch_size: 4.0}}") == {}
    result = snakemake(work, "--cores", "1", "--config", "experiments={small: {epochs: 2.0}}")
    assert "Nothing to be done" in result.stdout + result.stderr
    assert files_as_they_are(work) == before


@pytest.mark.slow
@pytest.mark.parametrize("case", ["fractional epochs", "NaN lr"])
def test_a_refused_value_leaves_the_finished_run_as_it_was(done, tmp_path, case):
    from faults.pipeline import MESSAGES  # the fault table's case, on a finished run

    work = shutil.copytree(done, tmp_path / "work", symlinks=True)
    before = files_as_they_are(work)
    value = {"fractional epochs": "epochs: 2.5", "NaN lr": "lr: .nan"}[case]
    result = snakemake(work, "--cores", "1", "--config", f"experiments={{small: {{{value}}}}}",
                       check=False)
    assert result.returncode == 1
    assert MESSAGES[case].replace("tiny", "small") in result.stderr
    assert files_as_they_are(work) == before


@pytest.mark.slow
def test_forcerun_evaluate_reruns_only_evaluation_and_what_follows(done):
    assert planned(done, "--forcerun", "evaluate") == {"evaluate": 8, **AFTER_EVALUATE}


@pytest.mark.slow
def test_new_prompts_rerun_prediction_only(done):
    assert planned(done, "--config", "predict={prompts: [w4]}") == {
        "predict": 8, "compare_predictions": 1, "all": 1}


@pytest.mark.slow
def test_changed_hyperparameter_reruns_its_experiment_only(done):
    assert planned(done, "--config", "experiments={wide: {lr: 0.5}}") == {
        "train": 4, "evaluate": 4, "predict": 4, "compare_predictions": 1, "provenance": 1,
        **AFTER_EVALUATE}
    # a new eval batch size also makes the arrays it needs
    assert planned(done, "--config", "experiments={small: {eval_batch_size: 3}}") == {
        "batchify": 2, "train": 4, "evaluate": 4, "predict": 4, "compare_predictions": 1,
        "provenance": 1, **AFTER_EVALUATE}


@pytest.mark.slow
def test_code_change_reruns_the_stages_that_import_it(done, tmp_path):
    """A copy of the workflow and the package, edited; the finished run copied beside it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "Snakefile", repo / "Snakefile")
    shutil.copytree(REPO / "workflow", repo / "workflow")
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    run = tmp_path / "run"
    shutil.copytree(done, run, symlinks=True)
    assert planned(run, snakefile=repo / "Snakefile") == {}
    with open(repo / "src/rnnlm/train.py", "a") as f:
        f.write("\n# a change to the training code\n")
    assert planned(run, snakefile=repo / "Snakefile") == {"train": 8, **AFTER_TRAIN}
    shutil.copy(REPO / "src/rnnlm/train.py", repo / "src/rnnlm/train.py")
    with open(repo / "src/rnnlm/plots.py", "a") as f:
        f.write("\n# a change to the figures' code\n")
    assert planned(run, snakefile=repo / "Snakefile") == {"plots": 1, "all": 1}


@pytest.mark.slow
def test_report_embeds_every_table_and_plot_and_the_config(done):
    snakemake(done, "--report", "report.html")
    html = (done / "report.html").read_text()
    embedded = set(re.findall(r'"filename": "([^"]+)"', html))
    assert embedded == {f"{name}.html" for name in TABLES} | {"predictions.html", *PLOTS}
    assert "Config used" in html and "System Message" not in html  # rst rendered cleanly
    assert all(name in html for name in EXPERIMENTS)


def embedded(report):
    """{file name: its text} of the HTML files a report embeds (as base64 data URIs)."""
    found = re.findall(r'"data_uri": "data:text/html;charset=utf8;filename=([^;"]+);base64,'
                       r'([A-Za-z0-9+/=]+)"', Path(report).read_text())
    return {name: base64.b64decode(data).decode() for name, data in found}


@pytest.mark.slow
def test_the_report_names_what_the_run_read_whatever_config_builds_it(done, tmp_path):
    """Built under a config without the mirror (PTB's public URL by default), the report names
    the mirror the download read, and the code digest and MXNet build each run recorded."""
    from test_tables import html_rows

    work = shutil.copytree(done, tmp_path / "work", symlinks=True)
    config = yaml.safe_load((work / "config.yaml").read_text())
    mirror = config.pop("corpora")["ptb"]["url"]
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(work, "--report", "report.html")
    public = yaml.safe_load((REPO / "workflow/corpora/ptb.yaml").read_text())["url"]
    assert public not in (work / "report.html").read_text()  # the landing page names no URL
    page = tmp_path / "provenance.html"
    page.write_text(embedded(work / "report.html")["provenance.html"])
    shared = {row["field"]: row["value"] for row in html_rows(page, "shared")}
    assert shared["download.url"] == mirror and shared["corpus"] == "ptb"
    assert shared["download.read.train"] == str(Path(mirror.removeprefix("file://"))
                                                 / "ptb.train.txt")
    assert shared["download.code"] == code_digest("data")
    assert shared["train_code"] == code_digest("train") and shared["mxnet_build"] == str(BUILD)


@pytest.mark.parametrize(("override", "named"), [
    (["typo=1"], "config key (top level): Additional properties are not allowed ('typo'"),
    (["modes=[lstm, lstmm]"], "config key modes.1: 'lstmm' is not one of"),
    (["experiments={small: {emsiz: 8}}"], "config key experiments.small: Additional "
                                          "properties are not allowed ('emsiz'"),
    (["experiments={small: {nhid: 0}}"], "config key experiments.small.nhid: 0 is less"),
    (["experiments={small: {dropout_i: 1.5}}"], "config key experiments.small.dropout_i: 1.5 "
                                                "is greater than or equal to the maximum of 1"),
    (["run=[small, nope]"], "config key run: 'nope' is not in experiments"),
    (["device=gpu", "gpus=0"], "config key gpus: device gpu needs gpus >= 1"),
    (["predict={top_k: 0}"], "config key predict.top_k: 0 is less than the minimum of 1"),
    (["predict={prompts: ['  ']}"], "config key predict.prompts.0: '  ' does not match"),
    (["export=[onnx, tflite]"], "config key export.1: 'tflite' is not one of ['onnx', 'torch']"),
])
def test_bad_config_stops_before_any_job_naming_the_key(fresh, override, named):
    result = snakemake(fresh, "--cores", "1", "--config", *override, check=False)
    assert result.returncode != 0
    assert named in result.stderr
    assert not (fresh / "results").exists() and not (fresh / "resources").exists()


def test_a_defined_corpus_no_experiment_uses_still_builds_its_vocabulary(mirror, tmp_path):
    folder, _ = mirror
    other = {"url": folder.as_uri(), "files": {s: f"ptb.{s}.txt" for s in ("train", "valid",
                                                                             "test")}}
    workdir = write_config(tmp_path / "w", *mirror, corpora={**ptb_mirror(*mirror), "other": other})
    snakemake(workdir, "--cores", "1", "results/data/other/vocab.tsv")
    words = pd.read_csv(workdir / "results/data/other/vocab.tsv", sep="\t")["word"]
    assert len(words) == 21 and "<eos>" in set(words)  # the mirror's 20 words and <eos>
    assert not (workdir / "results/data/ptb").exists()  # only what was asked for
    result = snakemake(workdir, "--cores", "1", "results/data/nope/vocab.tsv", check=False)
    assert result.returncode != 0
    assert "MissingRuleException" in result.stderr and "results/data/nope/vocab.tsv" in (
        result.stderr)
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr


def test_config_defaults_fill_experiments_from_the_schema(fresh):
    """Keys an experiment leaves out come from the schema, flags and arrays alike."""
    result = snakemake(fresh, "--dry-run", "--printshellcmds", "--config",
                       "experiments={extra: {}}", "run=[extra]")
    train = re.findall(r"^(?:Shell command: )?(rnnlm train .*)$", result.stdout, re.M)
    assert len(train) == 4
    assert ("--train results/data/ptb/train.b32.npy --valid results/data/ptb/valid.b10.npy"
            in train[0])
    assert ("--emsize 100 --nhid 100 --nlayers 2 --dropout 0.2 --init-range 0.1 "
            "--rnn-init init_range --lr 1.0 --clip 0.2 --clip-per token --epochs 1 --bptt 5 "
            "--seed 1 --lr-schedule plateau --decay-after 0 --decay-factor 0.25 --dropout-e 0.0 "
            "--dropout-i 0.0 --dropout-h 0.0 --dropout-o 0.0 --weight-dropout 0.0 --alpha 0.0 "
            "--beta 0.0 --wd 0.0 --optimizer sgd --nonmono 5 --finetune-epochs 0 --restore-best "
            "--tied --no-variable-bptt --device cpu") in train[0]


def test_gpu_device_requests_the_gpu_resource(fresh):
    result = snakemake(fresh, "--dry-run", "--printshellcmds", "--config", "device=gpu",
                       "gpus=2", "run=[small]")
    jobs = result.stdout.split("\n\n")
    gpu_jobs = [job for job in jobs if re.search(r"^rule (train|evaluate):", job, re.M)]
    assert len(gpu_jobs) == 8
    for job in gpu_jobs:
        assert re.search(r"resources: .*\bgpu=2\b", job) and "--device gpu --gpus 2" in job
    for job in jobs:
        if re.search(r"^rule (download|vocab|batchify|table|plots):", job, re.M):
            assert not re.search(r"\bgpu=", job)


FAKE_TRAIN = """#!/bin/sh
# `rnnlm train` stand-in that logs when it ran and what device it was given; the rest is real.
[ "$1" = train ] || exec {real} "$@"
out=$(echo "$*" | sed -n 's/.*--out-dir \\([^ ]*\\).*/\\1/p')
echo "start $(date +%s.%N) $*" >> {log}
sleep 2
for f in model.params model.json metrics.csv progress.csv summary.json; do touch "$out/$f"; done
echo "end $(date +%s.%N) $out" >> {log}
"""


@pytest.mark.parametrize(("budget", "at_once"), [(1, 1), (4, 4)])
def test_gpu_budget_limits_the_training_jobs_at_once(mirror, tmp_path, budget, at_once):
    """`--resources gpu=N` with `device: gpu` runs at most N one-GPU training jobs at once, each
    told to use the GPU it was given. No GPU here: a fake `rnnlm train` records the jobs."""
    log = tmp_path / "train.log"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "rnnlm").write_text(FAKE_TRAIN.format(real=BIN / "rnnlm", log=log))
    (fake / "rnnlm").chmod(0o755)
    workdir = write_config(tmp_path / "wd", *mirror, run=["small"])
    snakemake(workdir, "train_all", "--cores", "4", "--resources", f"gpu={budget}", "--config",
              "device=gpu", "gpus=1", first_on_path=fake)
    lines = [line.split(" ", 2) for line in log.read_text().splitlines()]
    assert sum(kind == "start" for kind, _, _ in lines) == len(MODES)
    assert all("--device gpu --gpus 1" in rest for kind, _, rest in lines if kind == "start")
    running = most = 0
    for kind, _, _ in sorted(lines, key=lambda line: float(line[1])):
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == at_once


CONDA_LINT = "Specify a conda environment or container for each rule."


def lint_findings(text):
    """{subject: [lint titles]} in the text of `snakemake --lint`, and the lines not read: all
    but blank lines, a lint's indented details and the profile Snakemake names."""
    findings, unread, subject = {}, [], None
    for line in text.splitlines():
        if header := re.fullmatch(r"Lints for (.+) \(line \d+, .+\):", line):
            subject = header.group(1)
            findings[subject] = []
        elif (title := re.fullmatch(r"    \* (.+):", line)) and subject:
            findings[subject].append(title.group(1))
        elif not (line == "" or line.startswith("      ") and subject
                  or line.startswith("Using workflow specific profile ")):
            unread.append(line)
    return findings, unread


def test_lint_finds_nothing_but_the_missing_conda_envs(fresh):
    """Rules run the uv environment's `rnnlm`: no conda env can hold it (mxnet 1.9.1 pins
    numpy<2, which only uv's override lifts), so that lint is the one expected, on every rule
    that runs a job. Lint must have run and been read whole: a crash, a new finding or a new
    output format fails. (`--lint json` prints text in Snakemake 9.27, so the text is read.)"""
    result = snakemake(fresh, "--lint", check=False)
    findings, unread = lint_findings(result.stderr)
    assert not unread, result.stderr[-3000:]
    assert {subject: titles for subject, titles in findings.items()
            if titles != [CONDA_LINT] or not subject.startswith("rule ")} == {}
    assert {f"rule {rule}" for rule in ALL_JOBS if rule != "all"} <= set(findings), findings
    assert result.returncode == 1  # Snakemake's status when lint found something


def test_snakefmt_is_clean():
    snakefmt = BIN / "snakefmt"
    if not snakefmt.exists():
        pytest.skip("snakefmt is not installed")
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("profile", ["slurm", "cluster-generic"])
def test_cluster_profiles_parse(fresh, profile):
    result = snakemake(fresh, "--workflow-profile", str(REPO / "workflow/profiles" / profile),
                       "--dry-run", "--config", "device=gpu")
    assert "train" in result.stdout and "gpu=1" in result.stdout  # tests/cluster submits them


def fake_commands(folder, **scripts):
    """Executables named after the keys, with the given shell bodies, first on PATH."""
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(("squeue", "sacct", "answer"), [
    ("echo PENDING", "exit 3", "running"),
    ("echo RUNNING", "exit 3", "running"),
    ("echo COMPLETING", "exit 3", "running"),
    ("echo COMPLETED", "exit 3", "success"),
    ("echo FAILED", "exit 3", "failed"),
    ("echo TIMEOUT", "exit 3", "failed"),
    ("echo OUT_OF_MEMORY", "exit 3", "failed"),
    # forgotten by slurmctld: accounting answers
    ("echo 'squeue: error: Invalid job id specified' >&2; exit 1", "echo COMPLETED", "success"),
    ("true", "echo 'CANCELLED by 0'", "failed"),
    ("true", "true", "failed"),  # unknown everywhere
    # controller unreachable: ask again later rather than fail a job that may be fine
    ("echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1", "exit 3",
     "running"),
])
def test_cluster_generic_status_script(tmp_path, squeue, sacct, answer):
    env = fake_commands(tmp_path, squeue=squeue, sacct=sacct)
    script = REPO / "workflow/profiles/cluster-generic/status.sh"
    result = subprocess.run([str(script), "42"], capture_output=True, text=True, env=env)
    assert result.stdout == f"{answer}\n"


@pytest.mark.parametrize(("gpus", "flags"), [("0", "--partition=cpu"),
                                             ("2", "--partition=gpu --gpus=2")])
def test_cluster_generic_submit_script(tmp_path, gpus, flags):
    env = fake_commands(tmp_path, sbatch='echo "$*" > sbatch.args; echo "77;cluster"')
    script = REPO / "workflow/profiles/cluster-generic/submit.sh"
    result = subprocess.run([str(script), "train", "2", "4000", "25", gpus, "cpu", "gpu",
                             "job.sh"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.stdout == "77\n"
    assert (tmp_path / "sbatch.args").read_text() == (
        "--parsable --job-name=smk-train --cpus-per-task=2 --mem=4000M --time=25 "
        f"--output=results/logs/cluster/train-%j.log {flags} job.sh\n")


SWEPT = {"sw": {"base": "small", "grid": {"lr": [0.5, 1], "dropout": [0, 0.2]}}}
EQUAL = "sw/lr~1.0/dropout~0.2"  # small's lr 1.0 and dropout 0.2: small's runs, trained once


def test_a_two_by_two_sweep_is_four_experiments_in_every_mode_and_seed(fresh):
    jobs = planned(fresh, "--config", "experiments={small: {seeds: [1, 2, 3]}}",
                   "sweeps={sw: {base: small, grid: {lr: [0.5, 1], dropout: [0, 0.1]}}}",
                   "run=[sw]")
    assert jobs["train"] == jobs["evaluate"] == 4 * len(MODES) * 3
    assert jobs["sweep"] == 1
    assert "predict" not in jobs and "compare_predictions" not in jobs  # for experiments only


@pytest.mark.slow
def test_seeds_and_a_sweep_give_statistics_comparisons_and_the_sweep_table(mirror, tmp_path):
    """Two seeds of two modes and a 2 x 2 sweep over them (two seeds) on the tiny corpus; the
    point equal to the sweep's base shares the base's training."""
    workdir = write_config(tmp_path / "work", *mirror, modes=["lstm", "gru"], run=["small", "sw"],
                           experiments={"small": {**EXPERIMENTS["small"], "seeds": [1, 2]}},
                           sweeps=SWEPT)
    jobs = planned(workdir)
    assert (jobs["train"], jobs["share"], jobs["evaluate"]) == (2 * 2 + 3 * 2 * 2, 2 * 2, 20)
    snakemake(workdir, "--cores", "2")
    results = workdir / "results"
    trained = {p.relative_to(results / "benchmarks/train").parent.as_posix()
               for p in (results / "benchmarks/train").rglob("*.tsv")}
    assert len(trained) == 4 * 2 and not any(t.startswith(EQUAL) for t in trained)
    runs = pd.read_csv(results / "runs.csv").set_index(["experiment", "mode", "seed"])
    shared = runs["trained_as"].dropna()
    assert set(shared.index) == {(EQUAL, m, s) for m in ("lstm", "gru") for s in (1, 2)}
    for (_, mode, seed), source in shared.items():
        assert source == f"small/{mode}/seed{seed}"  # evaluated on its own, on small's weights:
        assert runs.loc[(EQUAL, mode, seed), "test_ppl"] == runs.loc[("small", mode, seed),
                                                                     "test_ppl"]
    assert "Trained once: " in (results / "perplexity.md").read_text()
    table = pd.read_csv(results / "perplexity.csv").set_index(["experiment", "mode"])
    for mode in ("lstm", "gru"):
        tests = [json.loads((results / f"small/{mode}/seed{seed}/test.json").read_text())[
            "test_ppl"] for seed in (1, 2)]
        row = table.loc[("small", mode)]
        assert row["n"] == 2 and row["test_ppl_mean"] == pytest.approx(np.mean(tests))
        assert row["test_ppl_sd"] == pytest.approx(np.std(tests, ddof=1))
        assert len(set(tests)) == 2  # the seeds differ
    points = ["sw/lr~0.5/dropout~0.0", "sw/lr~0.5/dropout~0.2", "sw/lr~1.0/dropout~0.0", EQUAL]
    assert sorted({e for e, _ in table.index} - {"small"}) == points
    compared = pd.read_csv(results / "comparisons.csv")
    assert {"small", "sw"} <= set(compared["scope"].str.split().str[-1])
    assert compared["p_value"].between(0, 1).all()
    sweep = pd.read_csv(results / "sweeps/sw.csv")
    assert len(sweep) == 4 * 2 and sweep["best"].sum() == 2  # one best point per mode
    for _, rows in sweep.groupby("mode"):
        best = rows.loc[rows["best_valid_ppl_mean"].idxmin()]
        assert best["best"]  # chosen on validation
    assert (results / "plots/sweep.sw.png").is_file()
    assert (results / "sweeps/sw.html").read_text().count("<tr") == 1 + 4 * 2  # head, rows


@pytest.mark.slow
def test_default_config_with_three_seeds_on_the_real_ptb(shared_ptb, tmp_path):
    """The repository's config.yaml on the shared PTB copy, three seeds of two modes, epochs cut
    to 50 windows for CI: statistics over seeds that differ, on the real corpus."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, "--cores", "2", "--config",
              f"corpora={{ptb: {{url: {shared_ptb.as_uri()}}}}}", "modes=[lstm, gru]",
              "experiments={tutorial: {max_batches: 50, seeds: [1, 2, 3]}}")
    table = pd.read_csv(tmp_path / "results/perplexity.csv")
    assert list(table["mode"]) == ["lstm", "gru"] and set(table["experiment"]) == {"tutorial"}
    runs = pd.read_csv(tmp_path / "results/runs.csv")
    assert len(runs) == 2 * 3
    for mode, rows in runs.groupby("mode"):
        tests = [json.loads((tmp_path / f"results/tutorial/{mode}/seed{seed}/test.json")
                            .read_text())["test_ppl"] for seed in (1, 2, 3)]
        assert sorted(rows["test_ppl"]) == sorted(tests) and len(set(tests)) == 3
        mean = table.set_index("mode").loc[mode, "test_ppl_mean"]
        assert mean == pytest.approx(np.mean(tests))
    # 10,000 words: uniform guessing scores 10,000; 50 batches already do far better
    assert table["test_ppl_mean"].between(50, 5000).all() and (table["n"] == 3).all()
    assert (table["param_count"] > 1_000_000).all()
    assert "modes in tutorial" in (tmp_path / "results/comparisons.md").read_text()
    compared = (tmp_path / "results/predictions.md").read_text()
    assert all(f"### `{prompt}`" in compared for prompt in ("the company said", "in N the"))
    plots = ["learning_curves.tutorial.png", "test_ppl.png", "throughput.png"]
    assert sorted(p.name for p in (tmp_path / "results/plots").iterdir()) == sorted(plots)


RULE = re.compile(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t].*\n|\n)*)", re.M)


def handler_modules(func):
    """The rnnlm modules a CLI handler imports when it runs (they import lazily, after setting
    MXNet's threads)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return {node.module.split(".")[1] for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnlm.")}


def test_every_rules_code_digest_covers_the_code_its_command_runs():
    """A rule's `code` param is how a change of the code it runs reruns it: tune_table ran
    rnnlm.tune_report under the digest of rnnlm.tune, so a change to its table never showed."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    handlers = {name: sub.get_default("func") for name, sub in commands.choices.items()}
    rules = RULE.findall("".join(p.read_text() for p in sorted(REPO.glob("workflow/rules/*.smk"))))
    checked, uncovered = 0, {}
    for rule, body in rules:
        for command in re.findall(r'"rnnlm ([a-z-]+) ', body):
            covered = {path for stage in re.findall(r'code_digest\("(\w+)"\)', body)
                       for path in code_files(stage).values()}
            for module in handler_modules(handlers[command]):
                missing = set(code_files(module).values()) - covered
                if missing:
                    uncovered[f"{rule}: rnnlm {command}"] = sorted(p.name for p in missing)
            checked += 1
    assert uncovered == {}
    assert checked >= 18  # every rule that calls rnnlm
