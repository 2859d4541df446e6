"""A tune's trial, continued rung after rung: the same weights as one run of all its epochs."""

import hashlib

import numpy as np
import pytest
from markov import make_source, train_argv, write_corpus

import rnnlm.loop
from rnnlm import cli
from rnnlm.io import read_json
from rnnlm.mx import nd
from rnnlm.progress import Progress

FLAGS = dict(nlayers=2, dropout=0.3, log_interval=10, max_batches=20)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("small"), make_source(symbols=6),
                        tokens=(6_000, 1_000, 1_000))


def weights(run_dir):
    return {k: v.asnumpy() for k, v in nd.load(str(run_dir / "model.params")).items()}


def epochs_of(run_dir):
    lines = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


def continued(small, tmp_path, mode, rungs, **flags):
    """Train to rungs[0] epochs, then continue each rung's kept state to the next."""
    previous = None
    for epochs in rungs:
        run = tmp_path / f"{mode}-e{epochs}"
        argv = train_argv(small, run, mode, epochs=epochs, keep_state=run / "state", **flags)
        assert cli.main(argv + (["--continue-from", str(previous)] if previous else [])) == 0
        previous = run / "state"
    return run


@pytest.mark.parametrize(("mode", "schedule"), [
    ("rnn_relu", dict(lr_schedule="fixed", decay_after=2, decay_factor=0.5)),
    ("lstm", dict(lr=2.0)),  # the plateau schedule quarters lr and restores the best weights
])
def test_a_continued_trial_ends_with_the_weights_of_one_run(small, tmp_path, mode, schedule):
    flags = dict(FLAGS, **schedule)
    one = tmp_path / "one"
    assert cli.main(train_argv(small, one, mode, epochs=4, **flags)) == 0
    run = continued(small, tmp_path, mode, [1, 2, 4], **flags)
    assert epochs_of(run) == [1, 2, 3, 4]
    losses = [line.split(",")[:6] for line in (run / "metrics.csv").read_text().splitlines()]
    assert losses == [line.split(",")[:6] for line in (one / "metrics.csv").read_text()
                      .splitlines()]  # epoch, lr, train and valid loss/ppl; not the seconds
    a, b = weights(run), weights(one)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ours, theirs = read_json(run / "summary.json"), read_json(one / "summary.json")
    assert ours["best_valid_loss"] == theirs["best_valid_loss"]
    assert ours["best_epoch"] == theirs["best_epoch"]
    assert (run / "state" / "checkpoint.json").is_file() and not (run / "checkpoint").exists()
    assert not (run / "state" / "live.json").exists()  # a kept state is no running run to watch


def test_nt_asgd_continues_its_average(small, tmp_path, monkeypatch):
    # averaging from epoch 2 on: rung 1's kept state (2 epochs) holds the average
    monkeypatch.setattr(rnnlm.loop, "should_average", lambda history, loss, n: len(history) > 0)
    flags = dict(FLAGS, optimizer="nt-asgd")
    one = tmp_path / "one"
    assert cli.main(train_argv(small, one, "gru", epochs=3, **flags)) == 0
    assert read_json(one / "summary.json")["averaged_from_epoch"] is not None
    a, b = weights(continued(small, tmp_path, "gru", [2, 3], **flags)), weights(one)
    assert all(np.array_equal(a[k], b[k]) for k in a)


class Crash(Exception):
    pass


def test_a_killed_continuation_resumes_from_its_own_copy(small, tmp_path, monkeypatch):
    one = tmp_path / "one"
    assert cli.main(train_argv(small, one, epochs=3, **FLAGS)) == 0
    first = tmp_path / "e1"
    assert cli.main(train_argv(small, first, epochs=1, keep_state=first / "state", **FLAGS)) == 0
    argv = train_argv(small, tmp_path / "e3", epochs=3, keep_state=tmp_path / "e3" / "state",
                      continue_from=first / "state", checkpoint_minutes=0, **FLAGS)
    calls = iter(range(1, 100))
    original = Progress.report

    def report(self, *args):
        if next(calls) == 3:  # epoch 3's first report: epoch 2's checkpoint is the copy's own
            raise Crash
        return original(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(Progress, "report", report)
        with pytest.raises(Crash):
            cli.main(argv)
    assert read_json(tmp_path / "e3" / "checkpoint" / "checkpoint.json")["state"]["epoch"] == 3
    (first / "state" / "checkpoint.json").unlink()  # the rerun needs only its own checkpoint
    assert cli.main(argv) == 0
    a, b = weights(tmp_path / "e3"), weights(one)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert epochs_of(tmp_path / "e3") == [1, 2, 3]


def test_continuing_other_settings_is_refused_in_one_line(small, tmp_path, capsys):
    first = tmp_path / "e1"
    assert cli.main(train_argv(small, first, epochs=1, keep_state=first / "state", **FLAGS)) == 0
    for flags, message in ((dict(lr=0.5), "other settings (lr: 0.3 -> 0.5)"),
                           (dict(epochs=1), "a finished run of 1 epochs is needed to continue")):
        argv = train_argv(small, tmp_path / "next", **{**FLAGS, "epochs": 3, **flags},
                          continue_from=first / "state")
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


def test_a_damaged_kept_state_is_named_and_left_as_it_is(small, tmp_path, capsys):
    first = tmp_path / "e1"
    assert cli.main(train_argv(small, first, epochs=1, keep_state=first / "state", **FLAGS)) == 0
    record = read_json(first / "state" / "checkpoint.json")
    params = first / "state" / record["files"]["params"]
    params.write_bytes(params.read_bytes()[:100])  # cut short
    kept = {p.name: p.read_bytes() for p in params.parent.iterdir()}
    argv = train_argv(small, tmp_path / "next", **{**FLAGS, "epochs": 2},
                      continue_from=first / "state")
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    found = hashlib.sha256(params.read_bytes()).hexdigest()
    assert err == (f"rnnlm train: error: {params} is damaged (sha256 {found}, checkpoint.json "
                   f"records {record['sha256'][params.name]}): delete {first / 'state'} and run "
                   "snakemake again to retrain the rung that keeps it\n")
    assert {p.name: p.read_bytes() for p in params.parent.iterdir()} == kept
    assert not (tmp_path / "next" / "model.params").exists()


def test_a_diverging_trial_is_recorded_not_raised(small, tmp_path):
    run = tmp_path / "wild"
    argv = train_argv(small, run, "rnn_relu", lr=1e6, epochs=2, keep_state=run / "state",
                      record_divergence=True, **{k: v for k, v in FLAGS.items() if k != "lr"})
    assert cli.main(argv) == 0
    summary = read_json(run / "summary.json")
    assert "training " in summary["diverged"] and summary["best_valid_ppl"] is None
    assert (run / "model.params").is_file() and (run / "state").is_dir()
