"""Statistics across seeds, from scipy.stats: each group's mean test perplexity with its Student t
interval, Welch's t-test between two groups, and a sweep's best point chosen on validation.

A group is the runs of one experiment and mode, one per seed. Intervals and tests are on
perplexity, the tables' scale: across seeds it moves by a few percent, where intervals on
perplexity and on log-perplexity agree, and a reader compares the numbers printed.
"""

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from rnnlm.io import RnnlmError
from rnnlm.report import GROUP, in_given_order, point_text, split_experiment

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
CACHE_STATS = ("mean", "sd", "ci_low", "ci_high")
# Evaluation that adapts (rnnlm.adapt): its runs-table column test_ppl_{kind} -> (its name in a
# comparison's scope, the column of the same batch-1 stream without it, how a comparison names
# each side)
ADAPTED = {
    "cache": ("the cache", "cache_base_test_ppl",
              {"adapted": "with the cache", "base": "without it (batch 1)"}),
    "dynamic": ("dynamic evaluation", "dynamic_base_test_ppl",
                {"adapted": "with dynamic evaluation", "base": "static (batch 1)"}),
    "dynamic_cache": ("dynamic evaluation and the cache", "dynamic_base_test_ppl",
                      {"adapted": "with dynamic evaluation and the cache",
                       "base": "static (batch 1)"}),
}
MEANS = ("best_valid_ppl", "epochs", "tokens_per_s", "tokens_per_cpu_s", "train_seconds",
         "wall_seconds")
NO_TEST = np.nan  # where a group has one run: no spread, so no interval and no test
TEST_COLUMNS = ("diff", "diff_ci_low", "diff_ci_high", "p_value")
COMPARISON_COLUMNS = ("scope", "a", "b", "experiment_a", "mode_a", "experiment_b", "mode_b",
                      "n_a", "n_b", "test_ppl_mean_a", "test_ppl_mean_b", *TEST_COLUMNS,
                      "verdict")


def describe(values):
    """n, mean, sd, the mean's 95% Student t interval, min and max; sd and interval are NaN at
    n = 1 (unknown, not zero)."""
    values = np.asarray(values, dtype=float)
    row = {"n": len(values), "mean": values.mean(), "sd": NO_TEST, "ci_low": NO_TEST,
           "ci_high": NO_TEST, "min": values.min(), "max": values.max()}
    if len(values) > 1:
        low, high = (stats.ttest_1samp(values, popmean=0).confidence_interval(CONFIDENCE)
                     if values.min() < values.max() else (values[0], values[0]))  # all alike
        row.update(sd=values.std(ddof=1), ci_low=low, ci_high=high)
    return row


def welch(a, b):
    """Difference of means a - b, its 95% interval and the p-value of Welch's t-test (unequal
    variances); NaN when a group has one run."""
    if min(len(a), len(b)) < 2:
        return dict.fromkeys(TEST_COLUMNS, NO_TEST)
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(CONFIDENCE)
    return {"diff": np.mean(a) - np.mean(b), "diff_ci_low": ci.low, "diff_ci_high": ci.high,
            "p_value": result.pvalue}


def verdict(names, samples, p_value):
    """'<a> better' when p < ALPHA (the lower mean perplexity wins), else 'no difference at n=..'
    (not significant, which is not proof of equality), or 'no test at n=1'."""
    n = sorted({len(sample) for sample in samples})
    at = "n=" + " and ".join(map(str, n))
    if n[0] < 2:
        return f"no test at {at}"
    if p_value < ALPHA:
        return f"{names[np.argmin([np.mean(sample) for sample in samples])]} better"
    return f"no difference at {at}"


def summarize(runs):
    """One row per group: its corpus, n and test perplexity statistics, and the mean of the
    runs' other numbers; with the continuous cache (rnnlm.adapt.cache) its test perplexity's too,
    NaN for a group without it."""
    rows = []
    for (experiment, mode), group in runs.groupby(GROUP, sort=False):
        test = describe(group["test_ppl"])
        rows.append({"experiment": experiment, "sweep": group["sweep"].iloc[0],
                     "corpus": group["corpus"].iloc[0], "mode": mode, "n": test.pop("n"),
                     "param_count": group["param_count"].iloc[0],
                     **{f"test_ppl_{key}": value for key, value in test.items()},
                     **{f"{column}_mean": group[column].mean() for column in MEANS},
                     "contended": int(group["contention"].fillna("").astype(bool).sum()),
                     **adapted_summary(group)})
    return pd.DataFrame(rows)


def adapted_summary(group):
    """A group's test perplexity with each evaluation that adapts (ADAPTED: mean, sd, interval)
    and without it on the same batch-1 stream (mean); NaN where a run of it has none."""
    out = {}
    for kind, (_, base, _) in ADAPTED.items():
        values = group.get(f"test_ppl_{kind}")
        present = values is not None and values.notna().all()
        test = describe(values.astype(float)) if present else dict.fromkeys(CACHE_STATS, np.nan)
        out.update({f"test_ppl_{kind}_{key}": test[key] for key in CACHE_STATS})
        out.setdefault(f"{base}_mean", np.nan)  # dynamic and dynamic_cache share their base
        if present:
            out[f"{base}_mean"] = group[base].astype(float).mean()
    return out


def best_points(summary):
    """Each (sweep, mode)'s point of lowest mean validation perplexity: a point is never chosen
    on test. Ties go to the first point in the order given."""
    swept = summary[summary["sweep"].notna()]
    best = swept.loc[swept.groupby(["sweep", "mode"], sort=False)["best_valid_ppl_mean"].idxmin()]
    return best.reset_index(drop=True)


def samples_by_group(runs):
    """Each group's test perplexities, by (experiment, mode)."""
    return {key: group["test_ppl"].to_numpy() for key, group in runs.groupby(GROUP)}


def compare(samples, scope, pairs, label):
    """One comparisons row per pair of groups ((experiment, mode), (experiment, mode)) of
    ``samples`` (samples_by_group); ``label`` names a group in the verdict."""
    rows = []
    for a, b in pairs:
        names = (label(*a), label(*b))
        test = welch(samples[a], samples[b])
        rows.append({"scope": scope, "a": names[0], "b": names[1],
                     "experiment_a": a[0], "mode_a": a[1], "experiment_b": b[0], "mode_b": b[1],
                     "n_a": len(samples[a]), "n_b": len(samples[b]),
                     "test_ppl_mean_a": samples[a].mean(), "test_ppl_mean_b": samples[b].mean(),
                     **test, "verdict": verdict(names, (samples[a], samples[b]),
                                                test["p_value"])})
    return rows


def comparisons(runs):
    """Which group is better, and how sure: every pair of modes within a plain experiment; every
    pair of plain experiments for one mode on one corpus (perplexities over different
    vocabularies do not compare); in a sweep, every pair of modes each at its best point (on
    validation), since all pairs of points would run to hundreds of rows."""
    summary, samples = summarize(runs), samples_by_group(runs)
    plain = summary[summary["sweep"].isna()]
    rows = []
    for experiment, group in plain.groupby("experiment", sort=False):
        pairs = itertools.combinations([(experiment, mode) for mode in group["mode"]], 2)
        rows += compare(samples, f"modes in {experiment}", pairs, lambda _, mode: mode)
    for (corpus, mode), group in plain.groupby(["corpus", "mode"], sort=False):
        pairs = itertools.combinations([(name, mode) for name in group["experiment"]], 2)
        rows += compare(samples, f"{mode} across experiments on {corpus}", pairs,
                        lambda experiment, _: experiment)
    for sweep, best in best_points(summary).groupby("sweep", sort=False):
        pairs = itertools.combinations(best[GROUP].itertuples(index=False, name=None), 2)
        rows += compare(samples, f"modes at their best points of {sweep}", pairs,
                        lambda experiment, mode: f"{mode} ({point_text(experiment)})")
    rows += adapted_comparisons(runs, plain)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def adapted_comparisons(runs, plain):
    """For each plain experiment with an evaluation that adapts (ADAPTED): each mode with it
    against the same batch-1 stream without it (the same runs, so Welch's unpaired test is
    conservative), and the modes compared with it on."""
    rows = []
    for kind, (name, base, labels) in ADAPTED.items():
        samples = {}
        for (experiment, mode), group in runs.groupby(GROUP):
            samples[experiment, mode, "adapted"] = group[f"test_ppl_{kind}"].to_numpy(float)
            samples[experiment, mode, "base"] = group[base].to_numpy(float)
        adapted = plain[plain[f"test_ppl_{kind}_mean"].notna()]
        for experiment, group in adapted.groupby("experiment", sort=False):
            pairs = [((experiment, mode, "adapted"), (experiment, mode, "base"))
                     for mode in group["mode"]]
            rows += compare(samples, f"{name} in {experiment}", pairs,
                            lambda _, mode, side, labels=labels: f"{mode} {labels[side]}")
            pairs = itertools.combinations([(experiment, mode, "adapted")
                                            for mode in group["mode"]], 2)
            rows += compare(samples, f"modes in {experiment} with {name}", pairs,
                            lambda _, mode, side: mode)
    return rows


def sweep_summary(runs, sweep):
    """One row per point and mode of ``sweep``: the swept values as columns, n, mean validation
    and test perplexity with the test interval, the best point per mode (on validation), and
    each point's test perplexity against its mode's best."""
    others = runs["experiment"][runs["sweep"] != sweep]
    if len(others):
        raise RnnlmError(f"experiment {others.iloc[0]} is not a point of sweep {sweep}; pass "
                         f"only its run folders RESULTS/{sweep}/KEY~VALUE/.../MODE/seedN")
    summary = summarize(runs)
    points = [dict(split_experiment(name)[1]) for name in summary["experiment"]]
    keys = list(points[0])
    for name, point in zip(summary["experiment"], points, strict=True):
        if list(point) != keys:
            raise RnnlmError(f"sweep {sweep}: point {name} sweeps {', '.join(point)}, the "
                             f"others {', '.join(keys)}; pass the runs of one grid")
    table = pd.concat([pd.DataFrame(points, columns=keys), summary], axis=1)
    best = pd.MultiIndex.from_frame(best_points(summary)[GROUP])
    table["best"] = pd.MultiIndex.from_frame(table[GROUP]).isin(best)
    versus = vs_best(runs, table)
    return in_given_order(pd.concat([table, versus], axis=1), ["mode", *keys])


def vs_best(runs, table):
    """Each row's test perplexity minus its mode's best point's: interval, p and verdict."""
    samples = samples_by_group(runs)
    best = table[table["best"]].set_index("mode")["experiment"]
    rows = []
    for experiment, mode in zip(table["experiment"], table["mode"], strict=True):
        a, b = samples[experiment, mode], samples[best[mode], mode]
        if experiment == best[mode]:
            rows.append({"verdict_vs_best": "best on validation"})
            continue
        test = welch(a, b)
        rows.append({**{f"{key}_vs_best": value for key, value in test.items()},
                     "verdict_vs_best": verdict(("this point", "best point"), (a, b),
                                                test["p_value"])})
    return pd.DataFrame(rows, columns=[f"{key}_vs_best" for key in (*TEST_COLUMNS, "verdict")])

