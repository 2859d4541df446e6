"""A sweep's table: its points per mode, the best point per mode chosen on validation."""

from rnnlm.report import point_text, read_runs, split_experiment, value_text
from rnnlm.stats import sweep_summary
from rnnlm.tables.notes import INTERVAL_NOTE, PROTOCOL_NOTE
from rnnlm.tables.render import CI, DIFF, Col, p_value, write_all

SWEEP_COLS = (
    Col("mode", "mode", text=True), Col("n", "n"),
    Col("valid ppl", "best_valid_ppl_mean", "{:.2f}"), Col("test ppl", "test_ppl_mean", "{:.2f}"),
    Col("95% CI", ("test_ppl_ci_low", "test_ppl_ci_high"), CI),
    Col("best", "best", lambda best: "✓" if best else "", text=True),
    Col("test vs best [95% CI]", ("diff_vs_best", "diff_ci_low_vs_best", "diff_ci_high_vs_best"),
        DIFF),
    Col("p", "p_value_vs_best", p_value), Col("verdict", "verdict_vs_best", text=True))


def best_sentence(table):
    best = table[table["best"]]
    return "Best point on validation perplexity, per mode: " + "; ".join(
        f"{row['mode']} at {point_text(row['experiment'])}"
        + f" (valid {row['best_valid_ppl_mean']:.2f}, test {row['test_ppl_mean']:.2f})"
        for _, row in best.iterrows()) + "."


def write_sweep(run_dirs, name, csv, md, html):
    """One sweep's table: a row per point and mode, its best point per mode (chosen on
    validation, never on test) marked and named."""
    table = sweep_summary(read_runs(run_dirs), name)
    keys = [key for key, _ in split_experiment(table["experiment"].iloc[0])[1]]
    cols = (*(Col(key, key, value_text) for key in keys), *SWEEP_COLS)
    notes = [best_sentence(table), INTERVAL_NOTE,
             "Best point per mode: the lowest mean validation perplexity over its seeds; test "
             "perplexity never chooses. test vs best: this point's mean test perplexity minus "
             "the best point's, Welch's t-test at alpha 0.05 as in the comparisons.",
             PROTOCOL_NOTE]
    front = ["sweep", "experiment", *keys]
    table = table[front + [c for c in table.columns if c not in front]]
    write_all(table, cols, f"Sweep {name}", notes, csv, md, html)
    return table
