"""Report stage, the figures: what they draw (the Figure's artists), not only that a PNG exists."""

import math

import numpy as np
import pandas as pd
import pytest
from run_folders import EPOCH_TOKENS, REPORTS, contended_conditions, make_run, train_ppl
from test_tables import sweep_runs

from rnnlm import cli
from rnnlm.plots import (
    EPOCH_END,
    by_mode,
    groups_to_plot,
    learning_curves,
    mark_contended,
    plot_names,
    sweep_figure,
)
from rnnlm.report import read_curves, read_runs
from rnnlm.stats import sweep_summary
from rnnlm.tables.perplexity import perplexity_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TESTS = {"lstm": [130.0, 128.5, 131.0], "gru": [100.0, 101.5]}


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


@pytest.fixture
def runs(results):
    """tutorial: lstm over three seeds, gru over two; big: lstm, one seed."""
    return [make_run(results, "tutorial", mode, seed=seed, test_ppl=ppl)
            for mode, ppls in TESTS.items() for seed, ppl in enumerate(ppls, 1)] + [
        make_run(results, "big", "lstm", test_ppl=90.0)]


def artist(artists, gid):
    (found,) = [a for a in artists if a.get_gid() == gid]
    return found


def test_test_perplexity_draws_every_seed_and_the_tables_mean_with_its_interval(runs):
    table = read_runs(runs)
    summary = perplexity_table(table).set_index(["experiment", "mode"])
    ax = by_mode(groups_to_plot(table), "test_ppl", "test perplexity", "Test").axes[0]
    for experiment, mode, values in [("tutorial", "lstm", TESTS["lstm"]),
                                     ("tutorial", "gru", TESTS["gru"]), ("big", "lstm", [90.0])]:
        dots = artist(ax.collections, f"{experiment}/{mode}/seeds").get_offsets()
        assert sorted(dots[:, 1]) == sorted(values)
        row = summary.loc[(experiment, mode)]
        mean = artist(ax.lines, f"{experiment}/{mode}/mean")
        assert mean.get_ydata()[0] == pytest.approx(row["test_ppl_mean"])
        assert abs(dots[:, 0].mean() - mean.get_xdata()[0]) < 0.05  # dots around their mean
    bars = [c for c in ax.containers if c.lines[0].get_gid() == "tutorial/lstm/mean"][0]
    (caps_low, caps_high) = [line.get_ydata()[0] for line in bars.lines[1]]
    row = summary.loc[("tutorial", "lstm")]
    assert (caps_low, caps_high) == pytest.approx((row["test_ppl_ci_low"],
                                                   row["test_ppl_ci_high"]))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lstm", "gru"]
    assert "n = 1 to 3 seeds" in ax.get_title()


def test_a_lone_seeds_dot_shows_inside_its_means_hollow_diamond(runs):
    ax = by_mode(groups_to_plot(read_runs(runs)), "test_ppl", "test perplexity", "Test").axes[0]
    dot = artist(ax.collections, "big/lstm/seeds")  # n = 1: the dot and the mean coincide
    mean = artist(ax.lines, "big/lstm/mean")
    assert list(dot.get_offsets()[0]) == [mean.get_xdata()[0], mean.get_ydata()[0]]
    assert mean.get_markerfacecolor() == "none"  # hollow
    assert dot.get_zorder() > mean.get_zorder()  # drawn over it
    # the diamond's inside (its size over sqrt 2) is wider than the dot (sqrt of its area)
    assert mean.get_markersize() / math.sqrt(2) > math.sqrt(dot.get_sizes()[0])
    legend = ax.get_legend()
    entries = dict(zip([t.get_text() for t in legend.get_texts()], legend.legend_handles,
                       strict=True))
    assert entries["mean, 95% CI"].get_marker() == "D"
    assert entries["mean, 95% CI"].get_markerfacecolor() == "none"


def test_an_epochs_short_last_report_counts_with_the_one_before(runs):
    """Reports every 400 tokens and a last one over the epoch's last 50: merged, weighted by
    tokens, so the curve ends without the tail's noisy tick; the epoch's end is a legend
    entry, not a label over the plot."""
    progress = pd.DataFrame({"epoch": [1, 1, 1, 2, 2, 2], "batch": [10, 20, 22, 10, 20, 22],
                             "tokens_seen": [400, 800, 850, 1250, 1650, 1700], "lr": 1.0,
                             "train_loss": [5.0, 4.8, 5.5, 4.6, 4.5, 5.2]})
    progress["train_ppl"] = np.exp(progress["train_loss"])
    metrics = pd.DataFrame({"epoch": [1, 2], "tokens_seen": [850, 1700],
                            "valid_ppl": [130.0, 110.0]})
    ax = learning_curves("tutorial", {"lstm": [(progress, metrics)]}).axes[0]
    train = artist(ax.lines, "lstm/train_ppl")
    assert list(train.get_xdata()) == [400, 850, 1250, 1700]
    weighted = [(4.8 * 400 + 5.5 * 50) / 450, (4.5 * 400 + 5.2 * 50) / 450]
    assert train.get_ydata() == pytest.approx(np.exp([5.0, weighted[0], 4.6, weighted[1]]))
    assert train.get_ydata()[-1] < train.get_ydata()[-2]  # no upward tick at the end
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels.count(EPOCH_END) == 1
    (top,) = ax.child_axes
    assert top.get_xlabel() == ""  # nothing over the plot that reads as a subtitle
    assert [t.get_text() for t in top.xaxis.get_ticklabels()] == ["1", "2"]


def test_learning_curves_are_the_seed_mean_against_tokens_seen_with_a_band(runs):
    curves = {"lstm": [read_curves(run) for run in runs[:3]], "gru": [read_curves(runs[3])]}
    figure = learning_curves("tutorial", curves)
    ax = figure.axes[0]
    train = artist(ax.lines, "lstm/train_ppl")
    tokens = [e * EPOCH_TOKENS + r * EPOCH_TOKENS // REPORTS for e in range(2)
              for r in range(1, REPORTS + 1)]
    assert list(train.get_xdata()) == tokens
    assert train.get_ydata() == pytest.approx([np.mean([train_ppl(t, s) for s in (1, 2, 3)])
                                               for t in tokens])
    valid = artist(ax.lines, "lstm/valid_ppl")
    assert list(valid.get_xdata()) == [EPOCH_TOKENS, 2 * EPOCH_TOKENS]
    band = artist(ax.collections, "lstm/train_ppl/band").get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(train_ppl(tokens[-1], 1))  # lowest seed at the end
    assert not [c for c in ax.collections if c.get_gid() == "gru/train_ppl/band"]  # n = 1
    assert ax.get_xlabel() == "training tokens seen" and ax.get_yscale() == "log"
    top = [child for child in ax.child_axes][0]
    assert [t.get_text() for t in top.xaxis.get_ticklabels()] == ["1", "2"]
    assert "n = 1 to 3 seeds" in ax.get_title() and "lowest to highest seed" in ax.get_title()


def test_sweep_plot_draws_each_key_a_line_per_mode_others_at_the_best_point(results):
    table = sweep_summary(read_runs(sweep_runs(results)), "s")
    figure = sweep_figure(table, "s")
    lr_axis, dropout_axis = figure.axes[:2]
    lstm = artist(lr_axis.lines, "lstm/lr")  # lstm's best is lr=1, dropout=0 on validation
    assert list(lstm.get_xdata()) == [1, 2] and list(lstm.get_ydata()) == [101.5, 91.5]
    labels = {c.lines[0].get_gid(): c.get_label() for c in lr_axis.containers}
    assert labels == {"lstm/lr": "lstm (dropout=0)", "gru/lr": "gru (dropout=0)"}
    gru = artist(dropout_axis.lines, "gru/dropout")  # gru's best: lr=2, dropout=0
    assert list(gru.get_xdata()) == [0, 0.5] and list(gru.get_ydata()) == [96.5, 121.5]
    assert [t.get_text() for t in dropout_axis.get_xticklabels()] == ["0", "0.5"]
    star = artist(lr_axis.collections, "lstm/lr/best").get_offsets()
    assert list(star[0]) == [1, 101.5]
    assert "n = 2 seeds" in figure.get_suptitle()


def test_cli_plots_writes_every_named_png(runs, results):
    sweep = sweep_runs(results)[:4]  # one point of sweep s: its best, plotted by mode
    out = results / "plots"
    assert cli.main(["plots", "--runs", *map(str, runs + sweep), "--out-dir", str(out)]) == 0
    names = plot_names(["tutorial", "big"])
    assert names == ["learning_curves.tutorial.png", "learning_curves.big.png", "test_ppl.png",
                     "throughput.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary files left
    assert all((out / name).read_bytes().startswith(PNG_MAGIC) for name in names)
    shown = groups_to_plot(read_runs(runs + sweep))
    assert sorted(set(shown["experiment"])) == ["big", "s (best on valid)", "tutorial"]


def test_plots_name_a_missing_progress_file_and_the_stage(runs, results, capsys):
    (runs[0] / "progress.csv").unlink()
    out = results / "plots"
    assert cli.main(["plots", "--runs", *map(str, runs), "--out-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"rnnlm plots: error: {runs[0] / 'progress.csv'}: file not found; rerun the train stage "
        "for this run")
    assert not out.exists()  # every file is read before any figure is drawn


def throughput_figure(run_dirs):
    shown = groups_to_plot(read_runs(run_dirs))
    return mark_contended(by_mode(shown, "tokens_per_s", "tokens/s", "Throughput"), shown)


def test_throughput_crosses_the_seeds_timed_under_contention(results):
    """The issue's case: rnn_relu looked 14x slower than rnn_tanh because it trained while the
    machine was busy; the figure says which dots were timed so."""
    tanh = make_run(results, "tutorial", "rnn_tanh", tokens_per_s=14000.0)
    relu = [make_run(results, "tutorial", "rnn_relu", seed=1, tokens_per_s=13000.0),
            make_run(results, "tutorial", "rnn_relu", seed=2, tokens_per_s=1000.0,
                     conditions=contended_conditions(8.0, 1000.0))]
    (ax,) = throughput_figure([tanh, *relu]).axes
    seeds = artist(ax.collections, "tutorial/rnn_relu/seeds").get_offsets()
    crosses = artist(ax.collections, "tutorial/rnn_relu/contended").get_offsets()
    assert crosses.tolist() == [seeds[1].tolist()] and crosses[0][1] == 1000.0  # seed 2 only
    assert not [c for c in ax.collections if c.get_gid() == "tutorial/rnn_tanh/contended"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["tutorial", "mean, 95% CI", "timed under contention: tokens/s understated "
                                                  "(table: tokens/CPU-s)"]


def test_throughput_of_quiet_runs_has_no_contention_mark(runs):
    (ax,) = throughput_figure(runs).axes
    assert not [c for c in ax.collections if str(c.get_gid()).endswith("/contended")]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["tutorial", "big",
                                                                  "mean, 95% CI"]
