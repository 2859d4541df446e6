"""Report stage: the perplexity table and the figures, gathered from finished run folders.

A run folder is ``results/<experiment>/<mode>``: the experiment is its parent folder's name and
the mode its own. ``train`` left ``summary.json`` and ``metrics.csv`` there, ``evaluate`` left
``test.json``. Figures are drawn on ``matplotlib.figure.Figure`` objects, without pyplot's global
state or a display.
"""

import logging
from pathlib import Path

import pandas as pd

from rnnlm.io import RnnlmError, atomic_path, read_json, write_text

log = logging.getLogger(__name__)

# Table columns: (name, file it comes from, Markdown header, Markdown format).
COLUMNS = (
    ("experiment", None, "experiment", "{}"),
    ("mode", None, "mode", "{}"),
    ("param_count", "summary.json", "parameters", "{:,}"),
    ("best_valid_ppl", "summary.json", "best valid ppl", "{:.2f}"),
    ("test_ppl", "test.json", "test ppl", "{:.2f}"),
    ("published_test_ppl", None, "published test ppl", "{:.1f}"),  # of a preset; else empty
    ("gap_pct", None, "gap %", "{:+.1f}"),  # 100 * (test_ppl - published) / published
    ("epochs", "summary.json", "epochs", "{}"),
    ("train_seconds", "summary.json", "train s", "{:.1f}"),
    ("tokens_per_s", "summary.json", "tokens/s", "{:,.0f}"),
)
TEXT_COLUMNS = ("experiment", "mode")


def plot_names(experiments):
    """File names ``write_plots`` writes, the workflow's `plots` outputs."""
    return [f"learning_curves.{name}.png" for name in experiments] + ["test_ppl.png",
                                                                      "throughput.png"]


def read_run(run_dir):
    """One table row: the run's experiment, mode, and numbers from its summary and test JSON."""
    run_dir = Path(run_dir)
    row = {"experiment": run_dir.parent.name, "mode": run_dir.name}
    files = {name: read_json(run_dir / name) for name in ("summary.json", "test.json")}
    for column, source, _, _ in COLUMNS:
        if source is None:
            continue
        if column not in files[source]:
            raise RnnlmError(f"{run_dir / source}: no {column!r}; rerun the stage that writes it")
        row[column] = files[source][column]
    return row


def collect_runs(run_dirs, published=None):
    """The table as a DataFrame, one row per run folder, in the order given; ``published`` maps
    an experiment to its published test perplexity, set beside its runs with the relative gap."""
    rows = [read_run(run_dir) for run_dir in run_dirs]
    if not rows:
        raise RnnlmError("no run folders given; pass --runs results/EXPERIMENT/MODE ...")
    table = pd.DataFrame(rows, columns=[column for column, *_ in COLUMNS])
    table["published_test_ppl"] = table["experiment"].map(published or {}).astype(float)
    table["gap_pct"] = 100 * (table["test_ppl"] / table["published_test_ppl"] - 1)
    twice = table[table.duplicated(["experiment", "mode"])]
    if len(twice):
        first = twice.iloc[0]
        raise RnnlmError(f"run {first.experiment}/{first['mode']} given twice; pass each run once")
    return table


def markdown(table):
    """A GitHub Markdown table with numbers right-aligned and formatted for reading."""
    headers = [header for _, _, header, _ in COLUMNS]
    align = [":--" if column in TEXT_COLUMNS else "--:" for column, *_ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    for row in table.itertuples(index=False):
        cells = ["" if pd.isna(value) else fmt.format(value)
                 for value, (_, _, _, fmt) in zip(row, COLUMNS, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(run_dirs, csv_path, md_path, published=None):
    """Write the perplexity table as CSV (full precision) and Markdown; return it."""
    table = collect_runs(run_dirs, published)
    write_text(csv_path, table.to_csv(index=False))
    write_text(md_path, markdown(table))
    log.info("%s, %s: %d runs", csv_path, md_path, len(table))
    return table


def read_metrics(run_dir):
    path = Path(run_dir) / "metrics.csv"
    try:
        metrics = pd.read_csv(path)
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the train stage first") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise RnnlmError(f"{path}: not a metrics table ({err}); rerun its training") from None
    if not {"epoch", "valid_ppl"} <= set(metrics.columns) or metrics.empty:
        raise RnnlmError(f"{path}: needs epoch and valid_ppl rows; rerun its training")
    return metrics


def _save(figure, path):
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def learning_curves(experiment, runs, path):
    """Validation perplexity by epoch for one experiment: one line per (mode, run folder)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7, 4.5))
    ax = figure.subplots()
    for mode, run_dir in runs:
        metrics = read_metrics(run_dir)
        ax.plot(metrics["epoch"], metrics["valid_ppl"], marker="o", label=mode)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="validation perplexity (lower is better)",
           title=f"Learning curves: {experiment}")
    ax.grid(alpha=0.3)
    ax.legend(title="mode")
    _save(figure, path)
    return figure


def bars_by_mode(table, column, ylabel, title, path, fmt):
    """Grouped bars: one group per mode, one bar per experiment, each labelled with its value."""
    from matplotlib.figure import Figure

    modes = list(dict.fromkeys(table["mode"]))
    experiments = list(dict.fromkeys(table["experiment"]))
    width = 0.8 / len(experiments)
    figure = Figure(figsize=(max(6, 1.2 * len(modes) * len(experiments)), 4.5))
    ax = figure.subplots()
    for i, experiment in enumerate(experiments):
        rows = table[table["experiment"] == experiment].set_index("mode").reindex(modes)
        offsets = [m + (i - (len(experiments) - 1) / 2) * width for m in range(len(modes))]
        bars = ax.bar(offsets, rows[column], width, label=experiment)
        ax.bar_label(bars, fmt=fmt, fontsize=8, padding=2)
    ax.set_xticks(range(len(modes)), modes)
    ax.set(xlabel="mode", ylabel=ylabel, title=title)
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="experiment")
    _save(figure, path)
    return figure


def write_plots(run_dirs, out_dir):
    """Learning curves per experiment, test perplexity and throughput by mode; return the paths
    (named by ``plot_names``)."""
    table = collect_runs(run_dirs)
    experiments = list(dict.fromkeys(table["experiment"]))
    paths = [Path(out_dir) / name for name in plot_names(experiments)]
    *curves, test_ppl, throughput = paths
    for experiment, path in zip(experiments, curves, strict=True):
        runs = [(Path(d).name, d) for d in run_dirs if Path(d).parent.name == experiment]
        learning_curves(experiment, runs, path)
    bars_by_mode(table, "test_ppl", "test perplexity (lower is better)",
                 "Test perplexity by mode", test_ppl, "%.1f")
    bars_by_mode(table, "tokens_per_s", "training tokens per second",
                 "Training throughput by mode", throughput, "%.0f")
    log.info("%s: %d figures", out_dir, len(paths))
    return paths
