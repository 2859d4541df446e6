"""Report stage, the tables: the runs, perplexity by experiment and mode, comparisons, sweeps and
provenance, each as CSV (full precision, for machines) and as Markdown and HTML (rounded, readable
headers, the notes a reader needs). The Snakemake report shows .html in place but offers .csv and
.md only as downloads, so the report embeds the .html.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import pandas as pd

from rnnlm.io import RnnlmError, read_json, write_text
from rnnlm.plan.runs import MODES
from rnnlm.report import (
    point_text,
    read_provenance,
    read_runs,
    shared_training,
    split_experiment,
    value_text,
)
from rnnlm.stats import ALPHA, comparisons, summarize, sweep_summary
from rnnlm.vocab import UNK

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Col:
    """A shown column: its header, the table column(s) it formats, and whether it is text."""

    header: str
    source: str | tuple[str, ...]
    fmt: str | Callable = "{}"
    text: bool = False


def p_value(p):
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


CI = "[{:.2f}, {:.2f}]"
DIFF = "{:+.2f} [{:+.2f}, {:+.2f}]"
RUN_COLS = (Col("experiment", "experiment", text=True), Col("corpus", "corpus", text=True),
            Col("mode", "mode", text=True), Col("seed", "seed"),
            Col("best valid ppl", "best_valid_ppl", "{:.2f}"),
            Col("test ppl", "test_ppl", "{:.2f}"), Col("epochs", "epochs"),
            Col("train s", "train_seconds", "{:,.1f}"), Col("wall s", "wall_seconds", "{:,.1f}"),
            Col("tokens/s", "tokens_per_s", "{:,.0f}"), Col("parameters", "param_count", "{:,}"))
PERPLEXITY_COLS = (
    Col("experiment", "experiment", text=True), Col("corpus", "corpus", text=True),
    Col("mode", "mode", text=True), Col("n", "n"), Col("parameters", "param_count", "{:,}"),
    Col("test ppl", "test_ppl_mean", "{:.2f}"), Col("sd", "test_ppl_sd", "{:.2f}"),
    Col("95% CI", ("test_ppl_ci_low", "test_ppl_ci_high"), CI),
    Col("min", "test_ppl_min", "{:.2f}"), Col("max", "test_ppl_max", "{:.2f}"),
    Col("best valid ppl", "best_valid_ppl_mean", "{:.2f}"),
    Col("published test ppl", "published_test_ppl", "{:.1f}"), Col("gap %", "gap_pct", "{:+.1f}"),
    Col("epochs", "epochs_mean", "{:g}"), Col("tokens/s", "tokens_per_s_mean", "{:,.0f}"),
    Col("train s", "train_seconds_mean", "{:,.1f}"), Col("wall s", "wall_seconds_mean", "{:,.1f}"))
COMPARISON_COLS = (
    Col("compared", "scope", text=True), Col("a", "a", text=True), Col("b", "b", text=True),
    Col("n", ("n_a", "n_b"), lambda a, b: f"{a}" if a == b else f"{a} and {b}"),
    Col("test ppl a", "test_ppl_mean_a", "{:.2f}"), Col("test ppl b", "test_ppl_mean_b", "{:.2f}"),
    Col("a − b [95% CI]", ("diff", "diff_ci_low", "diff_ci_high"), DIFF),
    Col("p", "p_value", p_value), Col("verdict", "verdict", text=True))
# Shown where some run has the continuous cache (rnnlm.cache), after the columns above.
CACHE_RUN_COLS = (Col("cache test ppl", "test_ppl_cache", "{:.2f}"),
                  Col("no-cache b1 ppl", "cache_base_test_ppl", "{:.2f}"),
                  Col("θ", "cache_theta", "{:g}"), Col("λ", "cache_lambda", "{:g}"),
                  Col("window", "cache_window", "{:,.0f}"))
CACHE_PERPLEXITY_COLS = (
    Col("cache test ppl", "test_ppl_cache_mean", "{:.2f}"),
    Col("cache sd", "test_ppl_cache_sd", "{:.2f}"),
    Col("cache 95% CI", ("test_ppl_cache_ci_low", "test_ppl_cache_ci_high"), CI),
    Col("no-cache b1 ppl", "cache_base_test_ppl_mean", "{:.2f}"))
SWEEP_COLS = (
    Col("mode", "mode", text=True), Col("n", "n"),
    Col("valid ppl", "best_valid_ppl_mean", "{:.2f}"), Col("test ppl", "test_ppl_mean", "{:.2f}"),
    Col("95% CI", ("test_ppl_ci_low", "test_ppl_ci_high"), CI),
    Col("best", "best", lambda best: "✓" if best else "", text=True),
    Col("test vs best [95% CI]", ("diff_vs_best", "diff_ci_low_vs_best", "diff_ci_high_vs_best"),
        DIFF),
    Col("p", "p_value_vs_best", p_value), Col("verdict", "verdict_vs_best", text=True))

INTERVAL_NOTE = ("n: runs (seeds) per row. 95% CI: Student t interval of the mean test perplexity "
                 "over the seeds (scipy.stats), on perplexity itself, the scale printed (across "
                 "seeds it moves by a few percent, where it agrees with an interval on "
                 "log-perplexity); empty at n = 1, where the spread is unknown.")
PROTOCOL_NOTE = ("Each run keeps the weights of its best validation epoch and is evaluated on "
                 "test once.")
TEST_NOTE = (f"a − b: difference of mean test perplexities, with the 95% interval and p of "
             f"Welch's t-test (scipy.stats.ttest_ind, equal_var=False). Verdict: the lower mean "
             f"is better when p < {ALPHA:.2f}; otherwise no difference at that n (not "
             f"significant, which is not proof of equality).")
NO_TEST_NOTE = ("No test is possible: every group has one run (n = 1), so there is no spread to "
                "test a difference against. Name several seeds, e.g. `seeds: [1, 2, 3]` in an "
                "experiment, to compare.")
CACHE_NOTE = ("cache: the continuous cache pointer (Grave et al. 2016, as awd-lstm-lm's "
              "pointer.py) over the last layer's outputs of the previous `window` tokens, θ and "
              "λ chosen on validation (λ 0, no cache, always a candidate) and applied to test "
              "once. It reads the test split as one stream (batch 1, as pointer.py does); "
              "no-cache b1 ppl is that same stream without the cache, the fair baseline; test "
              "ppl is the evaluate stage's, at the experiment's eval batch size.")
SHARED_NOTE = ("Trained once: a run whose mode, data and training settings equal an earlier "
               "run's shares that run's training (the same weights, so the same perplexities; "
               "runs.csv names it in trained_as) instead of training again: ")


def shared_note(runs):
    """The note that says which experiments' runs are another's training, [] where none is."""
    found = shared_training(runs)
    return [SHARED_NOTE + "; ".join(f"{name}, {n} of {total} runs, as {' and '.join(trainers)}'s"
                                    for name, (n, total, trainers) in found.items()) + "."
            ] if found else []


STYLE = ("body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
         "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
         "th{background:#f4f4f4}")


def shown(table, cols):
    """The table as display strings: rounded, empty where a value is missing."""
    def cell(row, col):
        values = [row[name] for name in ((col.source,) if isinstance(col.source, str)
                                         else col.source)]
        if any(pd.isna(value) for value in values):
            return ""
        return col.fmt(*values) if callable(col.fmt) else col.fmt.format(*values)

    return pd.DataFrame([[cell(row, col) for col in cols] for _, row in table.iterrows()],
                        columns=[col.header for col in cols])


def markdown(table, cols, notes=()):
    """A GitHub Markdown table, numbers right-aligned, then the notes as paragraphs."""
    lines = ["| " + " | ".join(col.header for col in cols) + " |",
             "| " + " | ".join(":--" if col.text else "--:" for col in cols) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in shown(table, cols).itertuples(index=False)]
    return "\n\n".join(["\n".join(lines), *notes]) + "\n"


def html_table(table, cols, table_id):
    left = ",".join(f"#{table_id} td:nth-child({i}),#{table_id} th:nth-child({i})"
                    for i, col in enumerate(cols, 1) if col.text)
    style = f"<style>{left}{{text-align:left}}</style>\n" if left else ""
    return style + shown(table, cols).to_html(index=False, border=0, table_id=table_id)


@dataclass(frozen=True)
class Html:
    """Markup to place as it is, where other parts of a page are text."""

    html: str


def html_page(title, *parts):
    """A whole HTML page: a title, then tables (HTML) and notes (text, escaped)."""
    body = "\n".join(part.html if isinstance(part, Html) else f"<p>{escape(part)}</p>"
                     for part in parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h3>{escape(title)}</h3>\n{body}\n</body>\n</html>\n")


def write_all(table, cols, title, notes, csv, md=None, html=None):
    """``table`` to CSV, and shown with ``cols`` and ``notes`` to Markdown and HTML."""
    write_text(csv, table.to_csv(index=False))
    if md:
        write_text(md, markdown(table, cols, notes))
    if html:
        write_text(html, html_page(title, Html(html_table(table, cols, "table")), *notes))
    log.info("%s: %d rows", csv, len(table))


def with_cache(cols, extra, table, column, notes):
    """``cols`` and ``notes``, followed by the cache's where some row of ``table`` has one."""
    if table[column].notna().any():
        return (*cols, *extra), [*notes, CACHE_NOTE]
    return cols, list(notes)


def perplexity_table(runs, published=None):
    """Per experiment and mode: the summary statistics, and beside a preset its published test
    perplexity with the relative gap of our mean, 100 * (mean - published) / published."""
    table = summarize(runs).drop(columns="sweep")
    table["published_test_ppl"] = table["experiment"].map(published or {}).astype(float)
    table["gap_pct"] = 100 * (table["test_ppl_mean"] / table["published_test_ppl"] - 1)
    return table


def tuned_notes(tuned):
    """What the rows of tunes' final runs are: the tuned comparison."""
    return [f"Tuned comparison, {', '.join(tuned)}: each mode at its own choice of the tune "
            "(results/tunes/NAME.md), chosen on validation perplexity by successive halving "
            "with the same points and budget for every mode, then trained afresh with the "
            "tune's seeds and tested once."] if tuned else []


def write_table(run_dirs, runs_paths, paths, corpus=None, published=None, caches=(), tuned=()):
    """The runs table (CSV, HTML) and the perplexity table (CSV, Markdown, HTML); return the
    latter. ``caches``: the runs' cache.json files, where the cache is asked for; ``tuned``: the
    experiments that are tunes."""
    runs = read_runs(run_dirs, corpus, caches)
    table = perplexity_table(runs, published)
    runs_csv, runs_html = runs_paths
    shared = shared_note(runs)
    run_cols = (*RUN_COLS, Col("trained as", "trained_as", text=True)) if shared else RUN_COLS
    cols, notes = with_cache(run_cols, CACHE_RUN_COLS, runs, "test_ppl_cache",
                             [PROTOCOL_NOTE, *shared])
    write_all(runs.drop(columns="sweep"), cols, "Every run", notes, runs_csv, html=runs_html)
    notes = [INTERVAL_NOTE, PROTOCOL_NOTE, "gap %: 100 × (mean test ppl − published) / "
             "published, positive when ours is worse; published figures are in "
             "workflow/presets/.", *shared, *tuned_notes(tuned)]
    cols, notes = with_cache(PERPLEXITY_COLS, CACHE_PERPLEXITY_COLS, table, "test_ppl_cache_mean",
                             notes)
    write_all(table, cols, "Test perplexity by experiment and mode", notes, *paths)
    return table


def write_comparisons(run_dirs, csv, md, html, corpus=None, caches=(), tuned=()):
    """Which mode (or experiment) is better, and how sure; with no group of two runs or more,
    the Markdown and HTML say that no test is possible instead of printing numbers."""
    table = comparisons(read_runs(run_dirs, corpus, caches))
    title = "Comparisons of mean test perplexity"
    pairs = ("Pairs: the modes within each experiment; the experiments for one mode on one "
             "corpus; in a sweep, the modes each at its best point (chosen on validation).")
    if caches:
        pairs += (" Where an experiment has the continuous cache: each mode with the cache "
                  "against the same batch-1 test stream without it (the same runs, so the "
                  "unpaired test is conservative), and its modes compared with the cache on.")
    if not (table[["n_a", "n_b"]].min(axis=1) > 1).any():
        text = NO_TEST_NOTE if len(table) else "Nothing to compare: one group only."
        write_text(csv, table.to_csv(index=False))
        write_text(md, text + "\n")
        write_text(html, html_page(title, text, pairs))
        return table
    write_all(table, COMPARISON_COLS, title, [TEST_NOTE, pairs, *tuned_notes(tuned)], csv, md,
              html)
    return table


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


def write_provenance(run_dirs, csv, html):
    """One row per run of what produced it; the HTML lists what every run shares once, then the
    rest per run, digests shortened to 12 characters."""
    table = read_provenance(run_dirs)
    write_text(csv, table.to_csv(index=False))
    shared = [c for c in table.columns[3:] if table[c].astype(str).nunique() == 1]
    varying = [c for c in table.columns if c not in shared]
    short = table.map(lambda v: v[:12] if isinstance(v, str) and len(v) == 64 else v)
    common = pd.DataFrame({"field": shared, "value": [short[c].iloc[0] for c in shared]})
    cols = [Col(c, c, text=True) for c in varying]
    write_text(html, html_page(
        "Provenance of every run",
        f"What all {len(table)} runs share:", Html(html_table(common, (
            Col("field", "field", text=True), Col("value", "value", text=True)), "shared")),
        "What differs between runs:", Html(html_table(short, cols, "runs")),
        "SHA-256 digests show their first 12 hex digits here, all 64 in provenance.csv."))
    log.info("%s, %s: %d runs", csv, html, len(table))
    return table


def _word(top, markdown=True):
    word = top["word"].replace("|", "\\|") if markdown else top["word"]
    return f"`{word}` {top['prob']:.3f}" if markdown else f"{word} {top['prob']:.3f}"


def _run_order(run):
    mode = run["mode"]
    return (run["corpus"] or "", run["experiment"], MODES.index(mode) if mode in MODES
            else len(MODES), mode, run["seed"])


def _titles(runs):
    """Column titles: the mode alone when every run is of one experiment and seed."""
    one = len({(r["experiment"], r["seed"]) for r in runs}) == 1
    return [r["mode"] if one else f"{r['experiment']}/{r['mode']}/seed{r['seed']}" for r in runs]


def prompt_table(text, runs, markdown=True):
    """(notes, DataFrame of rank x run, or None) for one prompt: each run's top next words."""
    found = [next((p for p in r["predictions"] if p["prompt"] == text), None) for r in runs]
    errors = sorted({p["error"] for p in found if p and "error" in p})
    if errors:
        return [f"Cannot be read: {error}" for error in errors], None
    unknown = sorted({w for p in found if p for w in p["unknown"]})
    notes = [f"Not in the vocabulary, read as {UNK}: {', '.join(unknown)}"] if unknown else []
    depth = max(len(p["top"]) for p in found if p)
    rows = [[n + 1] + [_word(p["top"][n], markdown) if p and n < len(p["top"]) else ""
                       for p in found] for n in range(depth)]
    return notes, pd.DataFrame(rows, columns=["rank", *_titles(runs)])


def write_predictions_table(inputs, md_path, html_path):
    """results/predictions.md and .html: per corpus and prompt, the runs' top next words side by
    side; the vocabulary's size is the data's."""
    runs = sorted((read_json(p) for p in inputs), key=_run_order)
    if not runs:
        raise RnnlmError("no predictions.json given; run the predict stage first")
    intro = ("Most probable next words after each prompt (probability after the word), one "
             "column per model.")
    lines, parts = ["# Next-word predictions", "", intro, ""], []
    for corpus, size in dict.fromkeys((r["corpus"], r["vocab_size"]) for r in runs):
        group = [r for r in runs if (r["corpus"], r["vocab_size"]) == (corpus, size)]
        heading = f"{corpus or 'corpus'}: {size:,}-word vocabulary"
        lines += [f"## {heading}", ""]
        parts.append(Html(f"<h4>{escape(heading)}</h4>"))
        for text in dict.fromkeys(p["prompt"] for r in group for p in r["predictions"]):
            notes, table = prompt_table(text, group)
            lines += [f"### `{text}`", ""]
            lines += [note.replace(UNK, f"`{UNK}`") + "\n" for note in notes]
            parts += [Html(f"<h5>{escape(text)}</h5>"), *notes]
            if table is not None:
                cols = [Col(c, c, text=c != "rank") for c in table.columns]
                lines += [markdown(table, cols).rstrip(), ""]
                _, shown_html = prompt_table(text, group, markdown=False)
                parts.append(Html(html_table(shown_html, cols, f"p{len(parts)}")))
    write_text(md_path, "\n".join(lines))
    write_text(html_path, html_page("Next-word predictions", intro, *parts))
    return runs
