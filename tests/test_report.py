"""Report stage, reading: run identity from the path, the runs table, curves and provenance."""

import json
from pathlib import Path

import pytest
from run_folders import EPOCH_TOKENS, REPORTS, make_run

from rnnlm.io import RnnlmError
from rnnlm.plan.runs import Run
from rnnlm.report import read_curves, read_provenance, read_runs, split_experiment


def test_run_identity_is_read_from_the_path(tmp_path):
    assert Run.of_folder(tmp_path / "results/tutorial/lstm/seed3") == Run("tutorial", "lstm", 3)
    sweep_run = tmp_path / "results/lr-dropout/lr~0.5/dropout~0/gru/seed12"
    assert Run.of_folder(sweep_run) == Run("lr-dropout/lr~0.5/dropout~0", "gru", 12)


def test_a_sweep_point_parses_into_its_sweep_and_ordered_numeric_point():
    assert split_experiment("tutorial") == (None, ())
    assert split_experiment("s/lr~0.5/nhid~200/tied~True") == (
        "s", (("lr", 0.5), ("nhid", 200), ("tied", "True")))
    with pytest.raises(RnnlmError, match="'lr' is not key~value"):
        split_experiment("s/lr")


@pytest.mark.parametrize("folder", ["results/tutorial/lstm", "lstm/seed1", "results/a/b/seedx",
                                    "results/tutorial/lastm/seed1", "lr~1/lstm/seed1"])
def test_a_folder_that_is_not_a_run_is_named(folder):
    with pytest.raises(RnnlmError, match="not a run folder|without the sweep's folder"):
        Run.of_folder(Path(folder))


def test_runs_table_groups_by_experiment_and_mode_in_given_order_seeds_ascending(tmp_path):
    results = tmp_path / "results"
    given = [make_run(results, "tutorial", "lstm", seed=2, test_ppl=101),
             make_run(results, "big", "gru", seed=1, test_ppl=90),
             make_run(results, "tutorial", "gru", seed=1, test_ppl=110),
             make_run(results, "tutorial", "lstm", seed=1, test_ppl=100),
             make_run(results, "s/lr~1/dropout~0", "lstm", seed=1, test_ppl=95)]
    runs = read_runs(given, corpus={"big": "wikitext-2"})
    assert list(zip(runs["experiment"], runs["mode"], runs["seed"], strict=True)) == [
        ("tutorial", "lstm", 1), ("tutorial", "lstm", 2), ("tutorial", "gru", 1),
        ("big", "gru", 1), ("s/lr~1/dropout~0", "lstm", 1)]
    assert list(runs["test_ppl"]) == [100, 101, 110, 90, 95]
    assert list(runs["corpus"]) == ["ptb", "ptb", "ptb", "wikitext-2", "ptb"]
    assert list(runs["sweep"].fillna("")) == ["", "", "", "", "s"]
    assert runs["wall_seconds"].tolist() == [10.0] * 5 and runs["epochs"].tolist() == [2] * 5


def test_a_missing_file_or_key_names_the_file_and_the_stage_to_rerun(tmp_path):
    run = make_run(tmp_path / "results", "tutorial", "lstm")
    (run / "test.json").unlink()
    with pytest.raises(RnnlmError, match=r"seed1/test.json: file not found; rerun the evaluate "
                                         r"stage for this run"):
        read_runs([run])
    run = make_run(tmp_path / "results", "tutorial", "gru")
    summary = json.loads((run / "summary.json").read_text())
    del summary["wall_seconds"]
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RnnlmError, match="summary.json: no 'wall_seconds'; rerun the train"):
        read_runs([run])
    (run / "summary.json").write_text("{")
    with pytest.raises(RnnlmError, match="summary.json: unreadable .*rerun the train stage"):
        read_runs([run])


def test_a_run_given_twice_is_refused(tmp_path):
    run = make_run(tmp_path / "results", "tutorial", "gru", seed=4)
    with pytest.raises(RnnlmError, match="run tutorial/gru/seed4 given twice"):
        read_runs([run, run])


def test_curves_hold_every_report_and_every_epoch_against_tokens_seen(tmp_path):
    run = make_run(tmp_path / "results", "tutorial", "lstm", epochs=3)
    progress, metrics = read_curves(run)
    assert len(progress) == 3 * REPORTS and progress["tokens_seen"].is_monotonic_increasing
    assert metrics["tokens_seen"].tolist() == [EPOCH_TOKENS, 2 * EPOCH_TOKENS, 3 * EPOCH_TOKENS]
    (run / "progress.csv").write_text("epoch,batch\n1,10\n")
    with pytest.raises(RnnlmError, match="progress.csv: needs rows with tokens_seen, train_ppl "
                                         r"\(missing: tokens_seen, train_ppl\); rerun the train"):
        read_curves(run)


def test_provenance_is_flattened_one_row_per_run(tmp_path):
    runs = [make_run(tmp_path / "results", "tutorial", "lstm", seed=s) for s in (2, 1)]
    table = read_provenance(runs)
    assert table["seed"].tolist() == [1, 2]
    assert list(table.columns[:3]) == ["experiment", "mode", "seed"]
    assert table["python"].tolist() == ["3.11.2"] * 2
    assert table["git_commit"].iloc[0].startswith("0123456789abcdef")
    assert table["data_sha256.train"].iloc[0] == "a" * 64
    assert table["gpus"].tolist() == ["", ""]
