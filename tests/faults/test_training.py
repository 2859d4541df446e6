"""Training faults: killed jobs resume where they stopped, a stopped job checkpoints first, a
diverging run keeps its last good checkpoint, and device and folder problems stop before any
training. Through `snakemake` on the tiny workflow, and `rnnlm train` where a flag is needed."""

import signal
import subprocess
import time

import pytest
from conftest import RNNLM, rnnlm

from faults.pipeline import (
    MESSAGES,
    copy_workdir,
    error_line,
    interrupted_in_epoch_2,
    metrics_epochs,
    read_checkpoint,
    run_failing,
    snakemake,
    tiny_workflow,
    wait_for,
)

RUN = "results/tiny/lstm/seed1"
LOG = "results/logs/train/tiny/lstm/seed1.log"


@pytest.fixture
def workdir(data_ready, tmp_path, tiny_mirror):
    """A copy of ``data_ready`` whose training runs 3 epochs, long enough to be interrupted."""
    return tiny_workflow(copy_workdir(data_ready, tmp_path / "work"), *tiny_mirror, epochs=3)


def assert_resumes_and_finishes(workdir, epoch, batch):
    """The same command again: resumes at (epoch, batch) and ends with every epoch once."""
    snakemake(workdir, "--cores", "1", "train_all")
    log = (workdir / LOG).read_text()
    assert f"resuming from {RUN}/checkpoint: epoch {epoch} after {batch} of " in log
    assert "end of epoch   1 " not in log  # epoch 1 is not trained again
    assert metrics_epochs(workdir / RUN / "metrics.csv") == [1, 2, 3]
    assert not (workdir / RUN / "checkpoint").exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_the_same_command_resumes(workdir):
    job = interrupted_in_epoch_2(workdir, RUN, signal.SIGKILL, "job")
    assert job.returncode == 1 and MESSAGES["training job killed"] in job.output.read_text()
    saved = read_checkpoint(workdir / RUN)["state"]
    assert saved["epoch"] >= 2 and [m["epoch"] for m in saved["metrics"]] == list(
        range(1, saved["epoch"]))
    assert not (workdir / RUN / "metrics.csv").exists()  # no declared output: nothing incomplete
    assert_resumes_and_finishes(workdir, saved["epoch"], saved["batch"])


# A scheduler's SIGTERM (scancel, a time limit), and Ctrl-C: the terminal's SIGINT to the whole
# foreground group, Snakemake included; the message each leads with, the exit status it gives.
STOPS = {signal.SIGTERM: ("SIGTERM", 143), signal.SIGINT: ("SIGINT", 130)}


@pytest.mark.slow
@pytest.mark.parametrize("sig", STOPS, ids=lambda sig: sig.name)
def test_stop_signal_to_the_group_writes_a_checkpoint_then_resumes(workdir, sig):
    """The signal to the job's group: the job saves where it is, Snakemake waits for it."""
    job = interrupted_in_epoch_2(workdir, RUN, sig, "group")
    assert job.returncode == 1 and MESSAGES["training job killed"] in job.output.read_text()
    saved = read_checkpoint(workdir / RUN)["state"]
    error = error_line((workdir / LOG).read_text())
    assert error == (f"rnnlm train: error: stopped by {sig.name} at epoch {saved['epoch']} after "
                     f"{saved['batch']} of 160 windows; checkpoint saved in {RUN}/checkpoint: "
                     "run the same command to resume")
    assert MESSAGES[STOPS[sig][0]] in error and MESSAGES["SIGTERM resume"] in error
    assert_resumes_and_finishes(workdir, saved["epoch"], saved["batch"])


@pytest.mark.parametrize("sig", STOPS, ids=lambda sig: sig.name)
def test_stop_signal_exit_status_is_128_plus_the_signal(data_ready, tmp_path, sig):
    """`rnnlm train` alone: the status a shell shows for a process the signal ended (143 for
    SIGTERM, 130 for Ctrl-C), after a checkpoint of the window where it stopped."""
    out = tmp_path / "run"
    job = subprocess.Popen([str(RNNLM), *train_command(data_ready, out, "--epochs", "50")],
                           stderr=subprocess.PIPE, text=True)
    record = out / "checkpoint" / "checkpoint.json"
    wait_for(record.is_file, job, what="a checkpoint")
    time.sleep(0.2)
    job.send_signal(sig)
    assert job.wait(timeout=300) == STOPS[sig][1]
    error = error_line(job.stderr.read())
    assert error.startswith(f"rnnlm train: error: {MESSAGES[STOPS[sig][0]]} ")
    saved = read_checkpoint(out)["state"]
    assert saved["epoch"] >= 2
    assert f"at epoch {saved['epoch']} after {saved['batch']} of 160 windows" in error


def train_command(workdir, out, *flags):
    """`rnnlm train` arguments on the tiny workflow's arrays, rnn_relu (a huge lr blows it up)."""
    data = workdir / "results" / "data" / "ptb"
    return ["train", "--mode", "rnn_relu", "--vocab", str(data / "vocab.tsv"),
            "--train", str(data / "train.b4.npy"), "--valid", str(data / "valid.b2.npy"),
            "--out-dir", str(out), "--emsize", "8", "--nhid", "8", "--nlayers", "1",
            "--bptt", "4", "--threads", "1", *flags]


def test_diverging_run_stops_clearly_and_keeps_the_last_good_checkpoint(data_ready, tmp_path):
    out = tmp_path / "run"
    result = rnnlm(*train_command(data_ready, out, "--lr", "1e6", "--log-interval", "1",
                                  "--checkpoint-minutes", "0"))
    assert result.returncode == 1
    error = error_line(result.stderr)
    assert error.startswith("rnnlm train: error: training ") and MESSAGES["diverging run"] in error
    saved = read_checkpoint(out)
    assert f"(epoch 1 after {saved['state']['batch']} windows) stays in {out}/checkpoint" in error
    assert saved["state"]["batch"] >= 1
    assert (out / "checkpoint" / saved["files"]["params"]).is_file()
    assert not (out / "summary.json").exists() and not (out / "model.params").exists()


def test_gpu_on_a_machine_without_one_stops_before_training(workdir):
    from rnnlm.mx import mxnet as mx

    if mx.context.num_gpus() > 0:
        pytest.skip("this machine has a GPU")
    error = run_failing(workdir, LOG, "train_all", "--config", "device=gpu", "gpus=1")
    assert error == f"rnnlm train: error: {MESSAGES['no GPU']}"
    assert not (workdir / RUN).exists() or list((workdir / RUN).iterdir()) == []


def test_output_folder_not_writable_stops_before_training(data_ready, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder under a file cannot be made, even by root
    result = rnnlm(*train_command(data_ready, blocker / "run"))
    assert result.returncode == 1
    assert error_line(result.stderr) == (f"rnnlm train: error: output folder {blocker / 'run'} "
                                         f"{MESSAGES['output folder not writable']}")
    assert "MXNet CPU threads" in result.stderr and "epoch" not in result.stderr


def test_a_folder_given_for_an_input_file_stops_before_training(data_ready, tmp_path):
    """`--valid DIR` was an IsADirectoryError traceback after MXNet had loaded."""
    command = train_command(data_ready, tmp_path / "run")
    command[command.index("--valid") + 1] = str(tmp_path)
    result = rnnlm(*command)
    assert result.returncode == 1
    assert error_line(result.stderr) == (f"rnnlm train: error: {tmp_path}: "
                                         f"{MESSAGES['folder for a file']}")
    assert not (tmp_path / "run" / "model.params").exists()
