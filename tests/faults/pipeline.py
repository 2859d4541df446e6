"""Shared by the fault tests: a tiny workflow in a temporary folder, run by the real `snakemake`
(helpers of tests/test_workflow.py) or `rnnlm`, and readers that say whether an output is whole."""

import csv
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from conftest import REPO
from test_workflow import SNAKEMAKE, snakemake, write_config

# One experiment, tiny: a train job takes seconds, each of its epochs about one.
TINY = {"emsize": 8, "nhid": 8, "nlayers": 1, "epochs": 2, "batch_size": 4, "eval_batch_size": 2,
        "bptt": 4}


def tiny_workflow(workdir, mirror, digests, modes=("lstm",), **experiment):
    """config.yaml of one experiment `tiny` (TINY, updated by ``experiment``) in ``workdir``."""
    return write_config(Path(workdir), mirror, digests, modes=list(modes), run=["tiny"],
                        experiments={"tiny": {**TINY, **experiment}})


def start_snakemake(workdir, *args):
    """A `snakemake --cores 1` in its own process group, as a batch system starts a job."""
    path = Path(workdir) / f"snakemake.{time.monotonic_ns()}.out"
    with open(path, "w") as out:
        job = subprocess.Popen([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory",
                                str(workdir), "--cores", "1", *args], stdout=out,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    job.output = path  # what the user sees on the terminal
    return job


def wait_for(condition, job, timeout=300, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert job.poll() is None, f"the job ended (status {job.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.02)


def kill_group(job, sig):
    """``sig`` to the job's whole process group (snakemake and its jobs), as a scheduler does."""
    os.killpg(job.pid, sig)
    return job.wait(timeout=300)


def error_line(text):
    """The last line of a stage's output: the one-line error the user reads."""
    lines = text.strip().splitlines()
    assert lines and "Traceback" not in text, text[-3000:]
    return lines[-1]


def copy_workdir(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def read_checkpoint(run_dir):
    record = Path(run_dir) / "checkpoint" / "checkpoint.json"
    return json.loads(record.read_text()) if record.is_file() else None


def interrupted_in_epoch_2(workdir, run, sig, target):
    """Start `snakemake train_all`, send ``sig`` once epoch 1 is checkpointed; the ended job."""
    job = start_snakemake(workdir, "train_all")
    wait_for(lambda: (read_checkpoint(workdir / run) or {"state": {"epoch": 1}})["state"][
        "epoch"] == 2, job, what="a checkpoint of epoch 1")
    if target == "job":  # the training process only, as the kernel's OOM killer does
        os.kill(group_process(job, "train"), sig)
    else:  # the whole group, as a scheduler does
        os.killpg(job.pid, sig)
    job.wait(timeout=300)
    return job


def metrics_epochs(path):
    with open(path) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def stray_temporaries(workdir):
    """Temporary files an atomic write left in results/ or resources/ (checkpoints excluded:
    their next save cleans them)."""
    return [p for top in ("results", "resources") for p in (Path(workdir) / top).rglob(".*.tmp")
            if "checkpoint" not in p.parts]


# ---- is a declared output whole? One reader per kind of file the rules declare. ----------------
def _params(path):
    from rnnlm.mx import nd

    assert nd.load(str(path)), path


def _png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), path


def _text(path):
    assert path.read_text().endswith("\n"), path


def _tsv(path):
    rows = path.read_text().splitlines()
    assert rows[0] == "id\tword\tcount" and all(len(r.split("\t")) == 3 for r in rows[1:]), path


def _html(path):
    assert path.read_text().rstrip().endswith("</html>"), path


READERS = {".json": lambda p: json.loads(p.read_text()), ".npy": np.load, ".params": _params,
           ".png": _png, ".csv": lambda p: list(csv.DictReader(open(p))), ".md": _text,
           ".txt": _text, ".tsv": _tsv, ".html": _html}


def assert_whole(path):
    """Read ``path`` to the end with the reader of its kind; fails on a torn file."""
    READERS[path.suffix](path)


def declared_outputs(workdir):
    """Every file a rule declares as output that exists now, from `snakemake --summary`."""
    result = snakemake(workdir, "--summary", "--nolock", check=False)
    paths = [line.split("\t")[0] for line in result.stdout.splitlines()[1:] if "\t" in line]
    return [Path(workdir) / p for p in paths if (Path(workdir) / p).is_file()]


# The message fragment each case must show (the README table quotes these, tests/faults check
# both: the real output contains the fragment, the README table contains it verbatim).
MESSAGES = {
    "unknown mode": "config key modes.1: 'lstmm' is not one of",
    "unknown key": "config key (top level): Additional properties are not allowed ('epoch' was "
                   "unexpected)",
    "unknown experiment key": "config key experiments.tiny: Additional properties are not "
                              "allowed ('lr_rate' was unexpected)",
    "zero lr": "config key experiments.tiny.lr: 0 is less than or equal to the minimum of 0",
    "negative epochs": "config key experiments.tiny.epochs: -2 is less than the minimum of 1",
    "zero batch size": "config key experiments.tiny.batch_size: 0 is less than the minimum of 1",
    "negative bptt": "config key experiments.tiny.bptt: -1 is less than the minimum of 1",
    "dropout 1": "config key experiments.tiny.dropout: 1 is greater than or equal to the maximum "
                 "of 1",
    "negative dropout": "config key experiments.tiny.dropout: -0.1 is less than the minimum of 0",
    "AWD dropout 1": "config key experiments.tiny.weight_dropout: 1 is greater than or equal to "
                     "the maximum of 1",
    "negative alpha": "config key experiments.tiny.alpha: -1 is less than the minimum of 0",
    "negative beta": "config key experiments.tiny.beta: -0.5 is less than the minimum of 0",
    "negative weight decay": "config key experiments.tiny.wd: -1e-06 is less than the minimum of 0",
    "nt-asgd with a fixed schedule": "config key experiments.tiny.lr_schedule: fixed contradicts "
                                     "optimizer nt-asgd, which keeps lr constant and anneals by "
                                     "averaging (awd-lstm-lm); drop lr_schedule or use optimizer "
                                     "sgd",
    "gpu without gpus": "config key gpus: device gpu needs gpus >= 1",
    "experiment name not a folder name": "config key experiments: 'a/b' does not match",
    "unknown corpus": "config key experiments.tiny.corpus: 'wikitext-9' is not a corpus (known: ",
    "unknown blank_lines": "config key corpora.ptb.blank_lines: 'keep' is not one of ['skip', "
                           "'eos']",
    "empty seed list": "config key experiments.tiny.seeds: [] should be non-empty",
    "duplicate seed": "config key experiments.tiny.seeds: [1, 2, 1] has non-unique elements",
    "unknown key in a grid": "config key sweeps.s.grid: 'lr_rate' is not an experiment key",
    "grid value refused": "config key sweeps.s.grid.dropout: 1.5 is greater than or equal to the "
                          "maximum of 1",
    "sweep name clash": "config key sweeps.tiny: the name is an experiment's or a preset's too; "
                        "rename the sweep",
    "unknown key in a space": "config key tunes.t.space: 'lr_rate' is not an experiment key",
    "distribution lo above hi": "config key tunes.t.space.lr.uniform: lo 2 must be below hi 1",
    "log_uniform lo 0": "config key tunes.t.space.lr.log_uniform: lo 0 must be above 0",
    "drawn point refused": "config key tunes.t.space.nhid: -2 is less than the minimum of 1 (at "
                           "trial ",
    "rungs not increasing": "config key tunes.t.rungs: [1, 3, 3] must increase",
    "eta below 2": "config key tunes.t.eta: 1 is less than the minimum of 2",
    "no trials": "config key tunes.t.trials: 0 is less than the minimum of 1",
    "tune name clash": "config key tunes.tiny: the name is an experiment's, a sweep's or a "
                       "preset's too; rename the tune",
    "cache window 0": "config key experiments.tiny.cache.window: 0 is less than the minimum of 1",
    "cache lambda 1": "config key experiments.tiny.cache.lambdas.1: 1 is greater than or equal to "
                      "the maximum of 1",
    "dynamic_eval negative lr": "config key experiments.tiny.dynamic_eval.lr.1: -0.0001 is less "
                                "than the minimum of 0",
    "dynamic_eval negative decay": "config key experiments.tiny.dynamic_eval.decay.0: -0.002 is "
                                   "less than the minimum of 0",
    "dynamic_eval segment 0": "config key experiments.tiny.dynamic_eval.segment: 0 is less than "
                              "the minimum of 1",
    "dynamic_eval empty grid": "config key experiments.tiny.dynamic_eval.lr: [] should be "
                               "non-empty",
    "cutoffs not increasing": "config key experiments.tiny.cutoffs: [6000, 2000] is not "
                              "increasing; list the ranks in increasing order, each once",
    "div_value below 1": "config key experiments.tiny.div_value: 0.5 is less than the minimum of "
                         "1",
    "fractional epochs": "config key experiments.tiny.epochs: 2.5 is not of type 'integer'",
    "NaN lr": "config key experiments.tiny.lr: nan is not a finite number",
    "infinite init_range": "config key experiments.tiny.init_range: inf is not a finite number",
    "NaN weight decay": "config key experiments.tiny.wd: nan is not a finite number",
    "infinite alpha": "config key experiments.tiny.alpha: inf is not a finite number",
    "seed beyond MXNet's": "config key experiments.tiny.seed: 2147483648 is greater than the "
                           "maximum of 2147483647",
    "corpus name ending in a newline": "config key corpora: 'nl\\n' does not match",
    "experiment name too long": "config key experiments: 'aaaaaaaaaaaaaaaaaaaa'... is 300 "
                                "characters, longer than 221",
    "negative tune seed": "config key tunes.t.seed: -5 is less than the minimum of 0",
    "negative tune seeds": "config key tunes.t.seeds.0: -1 is less than the minimum of 0",
    "too many trials": "config key tunes.t.trials: 5000 is greater than the maximum of 1000",
    "sweep folder too long": "config key sweeps.s.grid.max_batches: the folder 'max_batches~"
                             "100000000000000000'... would be 273 bytes, more than a file "
                             "name's 255; use a shorter value",
    "nhid over MXNet's array limit": "config key experiments.tiny.nhid: 100000 makes lstm's "
                                     "recurrent layer 1 hold 4x100000x(8+100000+2) = 4.0e10 "
                                     "elements, one array over MXNet's 2^31 limit (this build "
                                     "has no int64 tensor sizes); lower nhid",
    "negative mogrifier rounds": "config key experiments.tiny.mogrifier_rounds: -1 is less than "
                                 "the minimum of 0",
    "mogrifier rank above nhid": "config key experiments.tiny.mogrifier_rank: 999 is above nhid "
                                 "and emsize's smaller, 8: a rank of a matrix between them is at "
                                 "most 8; use 1 to 8, or 0 for full matrices",
    "mogrifier key varied without the mode": "config key tunes.t.space.mogrifier_rank: only mode "
                                             "mogrifier reads it, and modes has no mogrifier: "
                                             "every point would train the same; add mogrifier "
                                             "to modes or drop the key",
    "model over the job's memory": "more than the job's mem_mb (150 MB); lower nhid, emsize, "
                                   "batch_size or bptt, or give the job more memory",
    "cutoff beyond the vocabulary": "cutoffs [6]: 6 is at or beyond the vocabulary size 6; every "
                                    "cutoff must be below it",
    "cache of an untrained run": "no trained model for the cache (model.json and model.params "
                                 "missing); train the run first",
    "cache window never applies": "the cache would never apply; lower cache.window below",
    "dynamic evaluation of an untrained run": "no trained model for dynamic evaluation "
                                              "(model.json and model.params missing); train the "
                                              "run first",
    "hand-edited vocabulary": "rerun the vocab stage (delete the file and run snakemake, or rnnlm "
                              "vocab) rather than editing it",
    "folder for a file": "a directory where a file is expected; pass the file's path",
    "score input not UTF-8": "stdin: line 2 is not UTF-8 (invalid continuation byte at byte 7 of "
                             "the line); give UTF-8 text, one sentence per line",
    "score input without a sentence": "stdin held no sentence (nothing, or blank lines only); "
                                      "give one sentence per line",
    "missing file": "no such file at the mirror; set corpora.ptb.url (or --url) to a directory, "
                    "file:// or http(s):// URL holding ptb.train.txt, ptb.valid.txt, ptb.test.txt",
    "truncated file": "checksum mismatch (expected sha256",
    "checksum mismatch": "the file is corrupt, truncated or another version: replace it at the "
                         "mirror or fix corpora.ptb.digests.valid",
    "mirror unreachable": "after 3 attempts; offline? set corpora.ptb.url (or --url)",
    "text folder missing a split": "no such file at the mirror; set corpora.mine.url (or --url)",
    "archive without a split": "has no member corpus/wiki.test.tokens (it holds "
                               "corpus/wiki.train.tokens, corpus/wiki.valid.tokens); set "
                               "corpora.mine.files to the paths of its members",
    "archive digest mismatch": "replace it at the mirror or fix corpora.mine.digests.archive",
    "non-UTF-8 corpus": "line 3 is not UTF-8 (invalid continuation byte at byte 23); fix or "
                        "re-download the file",
    "empty split": "test split is empty (no tokens); put text in it at the mirror, or fix the "
                   "corpus definition",
    "split of other words": "all 3 words are outside the vocabulary of the training split (e.g. "
                            "x y z); the splits must share one language and tokenization",
    "split too short": "are too few for one window of bptt 4: need at least 20 tokens at batch "
                       "size 4; use a longer training split or a smaller batch_size or bptt",
    "SIGTERM": "stopped by SIGTERM at epoch",
    "SIGINT": "stopped by SIGINT at epoch",
    "SIGTERM resume": "checkpoint saved in results/tiny/lstm/seed1/checkpoint: run the same "
                      "command to resume",
    "diverging run": "lower --lr (now 1e+06) or --clip (now 0.2); the last good checkpoint",
    "damaged model": "model.params is damaged (sha256 ",
    "damaged model record": "summary.json records",
    "damaged model fix": "delete it and run snakemake again to retrain the run",
    "unreadable old model": "model.params is damaged (MXNet cannot read it: Invalid NDArray file "
                            "format): delete it and run snakemake again to retrain the run",
    "damaged array": "test.b2.npy.sha256 records",
    "damaged array fix": "delete it and run snakemake again to batchify it anew (what reads it "
                         "then reruns too)",
    "damaged checkpoint": "checkpoint.json records",
    "damaged checkpoint fix": "set aside as results/tiny/lstm/seed1/checkpoint.damaged-",
    "damaged checkpoint restart": "not resumed from; the run starts over without it",
    "no GPU": "--device gpu, but MXNet sees no GPU: this is its CPU build; install a CUDA build "
              "with make setup GPU=cu117 (or uv sync --extra cu117), see the README's GPU "
              "section, or run with --device cpu",
    "output folder not writable": "is not writable (Not a directory); fix its permissions or "
                                  "choose another --out-dir",
    "training job killed": "Error in rule train:",
    "dynamic evaluation killed": "finished passes and the gradient statistics kept from a job "
                                 "that stopped",
    "second run in the same folder": "Error: Directory cannot be locked.",
    "snakemake itself killed": "It can be removed with the --unlock argument.",
}


def run_failing(workdir, log, *targets):
    """`snakemake` that must fail in the job logging to ``log``: its one-line error."""
    result = snakemake(workdir, "--cores", "1", *targets, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert log in result.stdout + result.stderr  # Snakemake points the user to the log
    return error_line((Path(workdir) / log).read_text())


def group_process(job, *words):
    """Pid of the process in ``job``'s group whose command line holds ``words`` (or None)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getpgid(int(proc.name)) == job.pid:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if all(w.encode() in argv for w in words):
                    return int(proc.name)
        except (OSError, ProcessLookupError):
            continue
    return None


def prepare_data(workdir):
    """Run the data stages of the tiny workflow: the start that training tests copy."""
    snakemake(workdir, "--cores", "1", *[f"results/data/ptb/{array}.npy"
                                         for array in ("train.b4", "valid.b2", "test.b2")])
    return workdir
