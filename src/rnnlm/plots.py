"""Report stage, the figures, drawn on ``matplotlib.figure.Figure`` objects without pyplot's
global state or a display. Each drawing function returns its Figure, and names its data artists
by ``gid`` (``<experiment>/<mode>/seeds`` ...), so tests read what was drawn, not file sizes.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter

from rnnlm.io import atomic_path
from rnnlm.plan.runs import Run
from rnnlm.report import GROUP, read_curves, read_runs, split_experiment, value_text
from rnnlm.stats import best_points, describe, summarize

log = logging.getLogger(__name__)
BAND = "band: lowest to highest seed"
SEED_DOT = 14  # points², about 3.7 points across
# The mean: a hollow diamond whose inside (8 / sqrt(2), 5.7 points) holds a seed's dot drawn
# over it, so that at n = 1 both show, where a filled one hid the dot.
MEAN_MARKER = {"marker": "D", "markersize": 8, "markerfacecolor": "none",
               "markeredgecolor": "black", "markeredgewidth": 1.2, "color": "black"}
EPOCH_END = "end of epoch (number on top)"


def plot_names(experiments):
    """File names ``write_plots`` writes for these plain (not sweep point) experiments."""
    return [f"learning_curves.{name}.png" for name in experiments] + ["test_ppl.png",
                                                                      "throughput.png"]


def n_text(counts):
    low, high = min(counts), max(counts)
    return f"n = {low} seed{'s' * (high > 1)}" if low == high else f"n = {low} to {high} seeds"


def new_figure(width, height, ncols=1):
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, ncols, squeeze=False, sharey=True)[0]


def save(figure, path):
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def groups_to_plot(runs):
    """Plain experiments' runs, and for each sweep every mode's best point (on validation),
    shown as the experiment '<sweep> (best on valid)'."""
    best = best_points(summarize(runs))
    chosen = runs.merge(best[GROUP], on=GROUP)
    chosen["experiment"] = chosen["sweep"] + " (best on valid)"
    return pd.concat([runs[runs["sweep"].isna()], chosen], ignore_index=True)


def by_mode(runs, column, ylabel, title):
    """Per mode, one column of dots per experiment: every seed's value, and the mean with its
    95% Student t interval (no interval at n = 1)."""
    modes = list(dict.fromkeys(runs["mode"]))
    experiments = list(dict.fromkeys(runs["experiment"]))
    width = 0.8 / len(experiments)
    figure, (ax,) = new_figure(max(6, 1.1 * len(modes) * len(experiments)), 4.5)
    counts = []
    for i, experiment in enumerate(experiments):
        offset = (i - (len(experiments) - 1) / 2) * width
        for m, mode in enumerate(modes):
            values = runs.loc[(runs["experiment"] == experiment) & (runs["mode"] == mode), column]
            if values.empty:
                continue
            stat = describe(values)
            counts.append(stat["n"])
            spread = np.linspace(-0.25, 0.25, len(values)) * width if len(values) > 1 else [0]
            ax.scatter(m + offset + np.asarray(spread), values, s=SEED_DOT, alpha=0.6,
                       color=f"C{i}", zorder=3, gid=f"{experiment}/{mode}/seeds")
            yerr = [[stat["mean"] - stat["ci_low"]], [stat["ci_high"] - stat["mean"]]]
            bars = ax.errorbar([m + offset], [stat["mean"]], yerr=None if stat["n"] < 2 else yerr,
                               capsize=4, **MEAN_MARKER)
            bars.lines[0].set_gid(f"{experiment}/{mode}/mean")
    ax.set_xticks(range(len(modes)), modes)
    ax.set(xlabel="mode", ylabel=ylabel, title=f"{title} ({n_text(counts)} per dot column)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend([*(Line2D([], [], marker="o", linestyle="", color=f"C{i}")
                 for i in range(len(experiments))),
               Line2D([], [], linestyle="", **MEAN_MARKER)],
              [*experiments, "mean, 95% CI"], fontsize=8,
              title="experiment (dots: seeds)")
    return figure


def mark_contended(figure, runs):
    """Cross the seeds of ``by_mode``'s figure whose run was timed under contention
    (rnnlm.contention), and say so in the legend: their tokens/s understate their speed."""
    (ax,) = figure.axes
    contended = runs["contention"].fillna("").astype(bool)
    for (experiment, mode), group in runs.groupby(["experiment", "mode"], sort=False):
        hit = contended[group.index].to_numpy()
        if hit.any():
            seeds = next(c for c in ax.collections if c.get_gid() == f"{experiment}/{mode}/seeds")
            ax.scatter(*seeds.get_offsets()[hit].T, marker="x", s=60, color="red", zorder=3,
                       gid=f"{experiment}/{mode}/contended")
    if contended.any():
        legend = ax.get_legend()
        ax.legend([*legend.legend_handles, Line2D([], [], marker="x", linestyle="", color="red")],
                  [t.get_text() for t in legend.get_texts()] + [
                      "timed under contention: tokens/s understated (table: tokens/CPU-s)"],
                  fontsize=8, title=legend.get_title().get_text())
    return figure


def seed_frame(frames, column):
    """Seeds side by side on the tokens seen: one column per seed."""
    return pd.concat([frame.set_index("tokens_seen")[column] for frame in frames], axis=1)


def whole_reports(progress):
    """Training reports with an epoch's short last one (it covers the few windows after the last
    full interval: a noisy tick at the curve's end) merged into the report before it, their
    losses weighted by the tokens each covers."""
    rows = progress.to_dict("records")
    start = 0
    merged = []
    for epoch in dict.fromkeys(row["epoch"] for row in rows):
        reports = [row for row in rows if row["epoch"] == epoch]
        spans = np.diff([start] + [row["tokens_seen"] for row in reports])
        start = reports[-1]["tokens_seen"]
        if len(reports) > 1 and spans[-1] < spans[0] / 2:
            last, before = reports.pop(), reports.pop()
            loss = np.average([before["train_loss"], last["train_loss"]], weights=spans[-2:])
            reports.append({**last, "train_loss": loss, "train_ppl": np.exp(loss)})
        merged += reports
    return pd.DataFrame(merged, columns=progress.columns)


def learning_curves(experiment, curves):
    """Training (at each report, ``whole_reports``) and validation perplexity (at each epoch's
    end) against tokens seen, per mode the mean over seeds with a band from the lowest to the
    highest seed; epochs end at the dotted lines (a legend entry). ``curves`` maps a mode to its
    seeds' (progress, metrics)."""
    figure, (ax,) = new_figure(8, 4.8)
    for i, (mode, seeds) in enumerate(curves.items()):
        for k, (name, column, style) in enumerate((("training", "train_ppl", "--"),
                                                   ("validation", "valid_ppl", "-o"))):
            per_seed = seed_frame([whole_reports(pair[0]) if k == 0 else pair[1]
                                   for pair in seeds], column)
            x = per_seed.index.to_numpy()
            ax.plot(x, per_seed.mean(axis=1), style, color=f"C{i}", markersize=4,
                    gid=f"{mode}/{column}", label=f"{mode} {name}")
            if len(seeds) > 1:
                ax.fill_between(x, per_seed.min(axis=1), per_seed.max(axis=1), color=f"C{i}",
                                alpha=0.15, linewidth=0, gid=f"{mode}/{column}/band")
    metrics = next(iter(curves.values()))[0][1]
    ends = metrics["tokens_seen"].to_numpy()
    for j, end in enumerate(ends):
        ax.axvline(end, color="grey", linestyle=":", linewidth=1,
                   label=EPOCH_END if j == 0 else None)
    top = ax.secondary_xaxis("top")  # unlabelled: a label there reads as the title's subtitle
    top.set_xticks(ends, [str(epoch) for epoch in metrics["epoch"]])
    n = n_text([len(seeds) for seeds in curves.values()])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 500k, 1M
    ax.set(xlabel="training tokens seen", ylabel="perplexity (log scale, lower is better)",
           title=f"Learning curves: {experiment} (mean of {n}; {BAND})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return figure


def write_plots(run_dirs, out_dir):
    """Learning curves per plain experiment, test perplexity and throughput by mode; return the
    paths, named by ``plot_names``."""
    runs = read_runs(run_dirs)
    experiments = list(dict.fromkeys(runs.loc[runs["sweep"].isna(), "experiment"]))
    curves = {experiment: {} for experiment in experiments}
    for run_dir in run_dirs:
        ident = Run.of_folder(run_dir)
        if ident.experiment in curves:
            curves[ident.experiment].setdefault(ident.mode, []).append(read_curves(run_dir))
    paths = [Path(out_dir) / name for name in plot_names(experiments)]
    *curve_paths, test_path, throughput_path = paths
    for experiment, path in zip(experiments, curve_paths, strict=True):
        save(learning_curves(experiment, curves[experiment]), path)
    shown = groups_to_plot(runs)
    save(by_mode(shown, "test_ppl", "test perplexity (lower is better)",
                 "Test perplexity by mode"), test_path)
    save(mark_contended(by_mode(shown, "tokens_per_s", "training tokens per second",
                                "Training throughput by mode"), shown), throughput_path)
    log.info("%s: %d figures", out_dir, len(paths))
    return paths


def sweep_figure(table, name):
    """Mean test perplexity (95% CI) against each swept key, a line per mode, the other keys
    held at that mode's best point (on validation), which a star marks."""
    keys = [key for key, _ in split_experiment(table["experiment"].iloc[0])[1]]
    figure, axes = new_figure(4.5 * len(keys) + 1, 4.5, ncols=len(keys))
    for ax, key in zip(axes, keys, strict=True):
        others = [other for other in keys if other != key]
        for i, (mode, rows) in enumerate(table.groupby("mode", sort=False)):
            best = rows[rows["best"]].iloc[0]
            line = rows[(rows[others] == best[others]).all(axis=1)].sort_values(key)
            held = ", ".join(f"{other}={value_text(best[other])}" for other in others)
            yerr = np.nan_to_num([line["test_ppl_mean"] - line["test_ppl_ci_low"],
                                  line["test_ppl_ci_high"] - line["test_ppl_mean"]])
            bars = ax.errorbar(line[key], line["test_ppl_mean"], yerr=yerr, marker="o",
                               color=f"C{i}", capsize=3, label=mode + (f" ({held})" * bool(held)))
            bars.lines[0].set_gid(f"{mode}/{key}")
            ax.scatter([best[key]], [best["test_ppl_mean"]], marker="*", s=180, color=f"C{i}",
                       edgecolors="black", zorder=3, gid=f"{mode}/{key}/best")
        if pd.api.types.is_numeric_dtype(table[key]):
            values = sorted(table[key].unique())
            ax.set_xticks(values, [value_text(value) for value in values])
        ax.set(xlabel=key, title=f"against {key}" + (", others held (legend)" * bool(others)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("mean test perplexity, 95% CI (lower is better)")
    figure.suptitle(f"Sweep {name} ({n_text(table['n'])} per point); ★ best point per mode, "
                    "chosen on validation")
    return figure


def write_sweep_plot(table, name, path):
    save(sweep_figure(table, name), path)
    log.info("%s: sweep %s", path, name)


STREAM_STEP = 5000  # tokens between two points of the stream plot


def cumulative_ppl(logp, step=STREAM_STEP):
    """(tokens, perplexity of the stream up to there) every ``step`` tokens and at its end."""
    ends = np.unique(np.append(np.arange(step, len(logp), step), len(logp)))
    return ends, np.exp(-np.cumsum(logp)[ends - 1] / ends)


def stream_figure(experiment, logps):
    """Test perplexity over the stream, cumulative, static (dashed) against dynamic evaluation
    (solid), per mode the mean over seeds. ``logps`` maps a mode to its seeds' dynamic_eval.npz
    arrays."""
    figure, (ax,) = new_figure(8, 4.8)
    for i, (mode, seeds) in enumerate(logps.items()):
        for kind, style in (("static", "--"), ("dynamic", "-")):
            curves = [cumulative_ppl(seed[f"test_logp_{kind}"]) for seed in seeds]
            x = curves[0][0]
            ax.plot(x, np.mean([ppl for _, ppl in curves], axis=0), style, color=f"C{i}",
                    gid=f"{mode}/{kind}", label=f"{mode} {kind}")
    n = n_text([len(seeds) for seeds in logps.values()])
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set(xlabel="test tokens read", ylabel="perplexity of the test stream so far",
           title=f"Dynamic evaluation over the test stream: {experiment} (mean of {n})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return figure


def write_stream_plot(npz_paths, experiment, path):
    """The stream figure of one experiment's dynamic_eval.npz files (RUN/dynamic_eval.npz)."""
    logps = {}
    for npz in map(Path, npz_paths):
        with np.load(npz) as arrays:
            logps.setdefault(Run.of_folder(npz.parent).mode, []).append(dict(arrays))
    save(stream_figure(experiment, logps), path)
    return path
