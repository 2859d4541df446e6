"""The comparisons table: which mode (or experiment) is better, and how sure."""

from rnnlm.io import write_text
from rnnlm.report import read_runs
from rnnlm.stats import ALPHA, comparisons
from rnnlm.tables.notes import tuned_notes
from rnnlm.tables.render import DIFF, Col, html_page, p_value, write_all

COMPARISON_COLS = (
    Col("compared", "scope", text=True), Col("a", "a", text=True), Col("b", "b", text=True),
    Col("n", ("n_a", "n_b"), lambda a, b: f"{a}" if a == b else f"{a} and {b}"),
    Col("test ppl a", "test_ppl_mean_a", "{:.2f}"), Col("test ppl b", "test_ppl_mean_b", "{:.2f}"),
    Col("a − b [95% CI]", ("diff", "diff_ci_low", "diff_ci_high"), DIFF),
    Col("p", "p_value", p_value), Col("verdict", "verdict", text=True))
TEST_NOTE = (f"a − b: difference of mean test perplexities, with the 95% interval and p of "
             f"Welch's t-test (scipy.stats.ttest_ind, equal_var=False). Verdict: the lower mean "
             f"is better when p < {ALPHA:.2f}; otherwise no difference at that n (not "
             f"significant, which is not proof of equality).")
NO_TEST_NOTE = ("No test is possible: every group has one run (n = 1), so there is no spread to "
                "test a difference against. Name several seeds, e.g. `seeds: [1, 2, 3]` in an "
                "experiment, to compare.")


def write_comparisons(run_dirs, csv, md, html, corpus=None, caches=(), tuned=(), dynamics=()):
    """Which mode (or experiment) is better, and how sure; with no group of two runs or more,
    the Markdown and HTML say that no test is possible instead of printing numbers."""
    table = comparisons(read_runs(run_dirs, corpus, caches, dynamics))
    title = "Comparisons of mean test perplexity"
    pairs = ("Pairs: the modes within each experiment; the experiments for one mode on one "
             "corpus; in a sweep, the modes each at its best point (chosen on validation).")
    if caches:
        pairs += (" Where an experiment has the continuous cache: each mode with the cache "
                  "against the same batch-1 test stream without it (the same runs, so the "
                  "unpaired test is conservative), and its modes compared with the cache on.")
    if dynamics:
        pairs += (" Where an experiment has dynamic evaluation: likewise each mode with it (and "
                  "with it and the cache, where both are asked for) against its static batch-1 "
                  "pass, and its modes compared with it on.")
    if not (table[["n_a", "n_b"]].min(axis=1) > 1).any():
        text = NO_TEST_NOTE if len(table) else "Nothing to compare: one group only."
        write_text(csv, table.to_csv(index=False))
        write_text(md, text + "\n")
        write_text(html, html_page(title, text, pairs))
        return table
    write_all(table, COMPARISON_COLS, title, [TEST_NOTE, pairs, *tuned_notes(tuned)], csv, md,
              html)
    return table
