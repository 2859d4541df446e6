"""Report stage: the perplexity table and the figures, from run folders written here by hand."""

import json

import pandas as pd
import pytest

from rnnlm import cli
from rnnlm.io import RnnlmError
from rnnlm.report import collect_runs, learning_curves, markdown, plot_names, write_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root, experiment, mode, epochs=3, test_ppl=120.5, param_count=12345):
    """A finished run folder as train and evaluate leave it."""
    run = root / experiment / mode
    run.mkdir(parents=True)
    valid = [300.0 / (epoch + 1) for epoch in range(epochs)]
    (run / "summary.json").write_text(json.dumps({
        "param_count": param_count, "best_epoch": epochs, "best_valid_ppl": min(valid),
        "epochs": epochs, "train_seconds": 12.25, "tokens_per_s": 4567.8, "device": "cpu"}))
    (run / "test.json").write_text(json.dumps({
        "split": "test", "tokens": 1000, "loss": 4.79, "perplexity": test_ppl,
        "test_ppl": test_ppl}))
    rows = ["epoch,lr,train_loss,train_ppl,valid_loss,valid_ppl,seconds,tokens_per_s"]
    rows += [f"{e + 1},1.0,5.0,150.0,5.0,{ppl},4.0,4567.8" for e, ppl in enumerate(valid)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    return run


@pytest.fixture
def runs(tmp_path):
    """Two experiments in two modes each, in the order the workflow passes them."""
    return [make_run(tmp_path / "results", experiment, mode, test_ppl=100 + i)
            for i, (experiment, mode) in enumerate(
                [("tutorial", "lstm"), ("tutorial", "gru"), ("big", "lstm"), ("big", "gru")])]


def test_table_has_one_row_per_run_named_by_its_folders(runs):
    table = collect_runs(runs)
    assert list(table.columns) == ["experiment", "mode", "param_count", "best_valid_ppl",
                                   "test_ppl", "published_test_ppl", "gap_pct", "epochs",
                                   "train_seconds", "tokens_per_s"]
    assert list(zip(table["experiment"], table["mode"], strict=True)) == [
        ("tutorial", "lstm"), ("tutorial", "gru"), ("big", "lstm"), ("big", "gru")]
    assert list(table["test_ppl"]) == [100, 101, 102, 103]
    assert table["best_valid_ppl"].iloc[0] == pytest.approx(100.0)  # min over epochs 300/1..3


def test_markdown_aligns_and_formats_numbers_for_reading(runs):
    lines = markdown(collect_runs(runs[:1])).splitlines()
    assert lines[0] == ("| experiment | mode | parameters | best valid ppl | test ppl "
                        "| published test ppl | gap % | epochs | train s | tokens/s |")
    assert lines[1] == "| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: |"
    assert lines[2] == "| tutorial | lstm | 12,345 | 100.00 | 100.00 |  |  | 3 | 12.2 | 4,568 |"


def test_cli_table_writes_csv_and_markdown(runs, tmp_path):
    csv, md = tmp_path / "results" / "perplexity.csv", tmp_path / "results" / "perplexity.md"
    assert cli.main(["table", "--runs", *map(str, runs), "--csv", str(csv), "--md", str(md)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == 4 and table["param_count"].tolist() == [12345] * 4
    assert len(md.read_text().splitlines()) == 2 + 4


def test_cli_plots_writes_every_named_png(runs, tmp_path):
    out = tmp_path / "results" / "plots"
    assert cli.main(["plots", "--runs", *map(str, runs), "--out-dir", str(out)]) == 0
    names = plot_names(["tutorial", "big"])
    assert names == ["learning_curves.tutorial.png", "learning_curves.big.png", "test_ppl.png",
                     "throughput.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary files left
    for name in names:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_learning_curves_draw_one_labelled_line_per_mode(runs, tmp_path):
    figure = learning_curves("tutorial", [("lstm", runs[0]), ("gru", runs[1])],
                             tmp_path / "curves.png")
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.lines] == ["lstm", "gru"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    assert ax.get_xlabel() == "epoch" and "validation perplexity" in ax.get_ylabel()


def test_missing_test_json_is_a_one_line_error(runs, tmp_path, capsys):
    (runs[1] / "test.json").unlink()
    code = cli.main(["table", "--runs", *map(str, runs), "--csv", str(tmp_path / "t.csv"),
                     "--md", str(tmp_path / "t.md")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("rnnlm table: error: ") and "gru/test.json: file not found" in err
    assert not (tmp_path / "t.csv").exists()


def test_missing_key_and_duplicate_runs_are_named(runs):
    summary = runs[0] / "summary.json"
    summary.write_text(json.dumps({k: v for k, v in json.loads(summary.read_text()).items()
                                   if k != "tokens_per_s"}))
    with pytest.raises(RnnlmError, match="summary.json: no 'tokens_per_s'"):
        collect_runs(runs)
    with pytest.raises(RnnlmError, match="run tutorial/gru given twice"):
        collect_runs([runs[1], runs[1]])


def test_plots_reject_metrics_without_validation_perplexity(runs, tmp_path):
    (runs[0] / "metrics.csv").write_text("epoch,lr\n1,1.0\n")
    with pytest.raises(RnnlmError, match="metrics.csv: needs epoch and valid_ppl"):
        write_plots(runs, tmp_path / "plots")
