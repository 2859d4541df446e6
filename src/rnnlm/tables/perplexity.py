"""The runs table (every run) and the perplexity table (per experiment and mode), with the
cache's columns where some run has the continuous cache, and dynamic evaluation's where some run
has it."""

from rnnlm.report import read_runs, shared_training
from rnnlm.stats import summarize
from rnnlm.tables.notes import CONTENTION_NOTE, INTERVAL_NOTE, PROTOCOL_NOTE, tuned_notes
from rnnlm.tables.render import CI, Col, write_all

RUN_COLS = (Col("experiment", "experiment", text=True), Col("corpus", "corpus", text=True),
            Col("mode", "mode", text=True), Col("seed", "seed"),
            Col("best valid ppl", "best_valid_ppl", "{:.2f}"),
            Col("test ppl", "test_ppl", "{:.2f}"), Col("epochs", "epochs"),
            Col("train s", "train_seconds", "{:,.1f}"), Col("wall s", "wall_seconds", "{:,.1f}"),
            Col("tokens/s", "tokens_per_s", "{:,.0f}"),
            Col("tokens/CPU-s", "tokens_per_cpu_s", "{:,.0f}"),
            Col("CPU-s per s", "cpu_per_wall", "{:.2f}"),
            Col("load start, end", ("load_start", "load_end"), "{:.1f}, {:.1f}"),
            Col("timed under contention", "contention", text=True),
            Col("parameters", "param_count", "{:,}"))
PERPLEXITY_COLS = (
    Col("experiment", "experiment", text=True), Col("corpus", "corpus", text=True),
    Col("mode", "mode", text=True), Col("n", "n"), Col("parameters", "param_count", "{:,}"),
    Col("test ppl", "test_ppl_mean", "{:.2f}"), Col("sd", "test_ppl_sd", "{:.2f}"),
    Col("95% CI", ("test_ppl_ci_low", "test_ppl_ci_high"), CI),
    Col("min", "test_ppl_min", "{:.2f}"), Col("max", "test_ppl_max", "{:.2f}"),
    Col("best valid ppl", "best_valid_ppl_mean", "{:.2f}"),
    Col("published test ppl", "published_test_ppl", "{:.1f}"), Col("gap %", "gap_pct", "{:+.1f}"),
    Col("epochs", "epochs_mean", "{:g}"), Col("tokens/s", "tokens_per_s_mean", "{:,.0f}"),
    Col("tokens/CPU-s", "tokens_per_cpu_s_mean", "{:,.0f}"),
    Col("contended runs", "contended", "{:d}"),
    Col("train s", "train_seconds_mean", "{:,.1f}"), Col("wall s", "wall_seconds_mean", "{:,.1f}"))
# Shown where some run has the continuous cache (rnnlm.adapt.cache), after the columns above.
CACHE_RUN_COLS = (Col("cache test ppl", "test_ppl_cache", "{:.2f}"),
                  Col("no-cache b1 ppl", "cache_base_test_ppl", "{:.2f}"),
                  Col("θ", "cache_theta", "{:g}"), Col("λ", "cache_lambda", "{:g}"),
                  Col("window", "cache_window", "{:,.0f}"))
CACHE_PERPLEXITY_COLS = (
    Col("cache test ppl", "test_ppl_cache_mean", "{:.2f}"),
    Col("cache sd", "test_ppl_cache_sd", "{:.2f}"),
    Col("cache 95% CI", ("test_ppl_cache_ci_low", "test_ppl_cache_ci_high"), CI),
    Col("no-cache b1 ppl", "cache_base_test_ppl_mean", "{:.2f}"))
CACHE_NOTE = ("cache: the continuous cache pointer (Grave et al. 2016, as awd-lstm-lm's "
              "pointer.py) over the last layer's outputs of the previous `window` tokens, θ and "
              "λ chosen on validation (λ 0, no cache, always a candidate) and applied to test "
              "once. It reads the test split as one stream (batch 1, as pointer.py does); "
              "no-cache b1 ppl is that same stream without the cache, the fair baseline; test "
              "ppl is the evaluate stage's, at the experiment's eval batch size.")
# Shown where some run has dynamic evaluation (rnnlm.adapt.dynamic); then with the cache on top.
DYNAMIC_RUN_COLS = (Col("dynamic test ppl", "test_ppl_dynamic", "{:.2f}"),
                    Col("static b1 ppl", "dynamic_base_test_ppl", "{:.2f}"),
                    Col("dynamic lr", "dynamic_lr", "{:g}"),
                    Col("dynamic decay", "dynamic_decay", "{:g}"))
DYNAMIC_PERPLEXITY_COLS = (
    Col("dynamic test ppl", "test_ppl_dynamic_mean", "{:.2f}"),
    Col("dynamic sd", "test_ppl_dynamic_sd", "{:.2f}"),
    Col("dynamic 95% CI", ("test_ppl_dynamic_ci_low", "test_ppl_dynamic_ci_high"), CI),
    Col("static b1 ppl", "dynamic_base_test_ppl_mean", "{:.2f}"))
DYNAMIC_CACHE_RUN_COLS = (Col("dynamic+cache test ppl", "test_ppl_dynamic_cache", "{:.2f}"),)
DYNAMIC_CACHE_PERPLEXITY_COLS = (
    Col("dynamic+cache test ppl", "test_ppl_dynamic_cache_mean", "{:.2f}"),
    Col("dynamic+cache 95% CI", ("test_ppl_dynamic_cache_ci_low",
                                 "test_ppl_dynamic_cache_ci_high"), CI))
DYNAMIC_NOTE = ("dynamic: dynamic evaluation (Krause et al. 2018, as dynamiceval.py): the model "
                "takes a gradient step after scoring each segment of the test stream (batch 1), "
                "lr and decay chosen on validation (lr 0, the static model, always a candidate) "
                "and applied to test once; static b1 ppl is that same stream without the steps. "
                "dynamic+cache: the continuous cache on top of the dynamic pass, its θ and λ "
                "chosen on validation over that pass.")
SHARED_NOTE = ("Trained once: a run whose mode, data and training settings equal an earlier "
               "run's shares that run's training (the same weights, so the same perplexities; "
               "runs.csv names it in trained_as) instead of training again: ")


def shared_note(runs):
    """The note that says which experiments' runs are another's training, [] where none is."""
    found = shared_training(runs)
    return [SHARED_NOTE + "; ".join(f"{name}, {n} of {total} runs, as {' and '.join(trainers)}'s"
                                    for name, (n, total, trainers) in found.items()) + "."
            ] if found else []


def with_adapted(cols, notes, table, extras):
    """``cols`` and ``notes``, followed by each of ``extras`` ((column, its columns, its note))
    whose column some row of ``table`` has."""
    cols, notes = tuple(cols), list(notes)
    for column, extra, note in extras:
        if table[column].notna().any():
            cols += extra
            notes += [note] if note not in notes else []
    return cols, notes


def perplexity_table(runs, published=None):
    """Per experiment and mode: the summary statistics, and beside a preset its published test
    perplexity with the relative gap of our mean, 100 * (mean - published) / published."""
    table = summarize(runs).drop(columns="sweep")
    table["published_test_ppl"] = table["experiment"].map(published or {}).astype(float)
    table["gap_pct"] = 100 * (table["test_ppl_mean"] / table["published_test_ppl"] - 1)
    return table


def write_table(run_dirs, runs_paths, paths, corpus=None, published=None, caches=(), tuned=(),
                dynamics=()):
    """The runs table (CSV, HTML) and the perplexity table (CSV, Markdown, HTML); return the
    latter. ``caches``, ``dynamics``: the runs' cache.json and dynamic_eval.json files, where
    they are asked for; ``tuned``: the experiments that are tunes."""
    runs = read_runs(run_dirs, corpus, caches, dynamics)
    table = perplexity_table(runs, published)
    runs_csv, runs_html = runs_paths
    shared = shared_note(runs)
    run_cols = (*RUN_COLS, Col("trained as", "trained_as", text=True)) if shared else RUN_COLS
    cols, notes = with_adapted(run_cols, [PROTOCOL_NOTE, CONTENTION_NOTE, *shared], runs, (
        ("test_ppl_cache", CACHE_RUN_COLS, CACHE_NOTE),
        ("test_ppl_dynamic", DYNAMIC_RUN_COLS, DYNAMIC_NOTE),
        ("test_ppl_dynamic_cache", DYNAMIC_CACHE_RUN_COLS, DYNAMIC_NOTE)))
    write_all(runs.drop(columns="sweep"), cols, "Every run", notes, runs_csv, html=runs_html)
    notes = [INTERVAL_NOTE, PROTOCOL_NOTE, "gap %: 100 × (mean test ppl − published) / "
             "published, positive when ours is worse; published figures are in "
             "workflow/presets/.", CONTENTION_NOTE, *shared, *tuned_notes(tuned)]
    cols, notes = with_adapted(PERPLEXITY_COLS, notes, table, (
        ("test_ppl_cache_mean", CACHE_PERPLEXITY_COLS, CACHE_NOTE),
        ("test_ppl_dynamic_mean", DYNAMIC_PERPLEXITY_COLS, DYNAMIC_NOTE),
        ("test_ppl_dynamic_cache_mean", DYNAMIC_CACHE_PERPLEXITY_COLS, DYNAMIC_NOTE)))
    write_all(table, cols, "Test perplexity by experiment and mode", notes, *paths)
    return table
