"""Statistics across seeds, checked against scipy's own formulas and hand-made groups."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rnnlm.stats import best_points, describe, verdict, welch


def test_describe_gives_the_student_t_interval_of_the_mean():
    values = [101.0, 104.5, 99.25, 102.0]
    row = describe(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                 scale=np.std(values, ddof=1) / math.sqrt(len(values)))
    assert row["n"] == 4 and row["mean"] == pytest.approx(101.6875)
    assert row["sd"] == pytest.approx(np.std(values, ddof=1))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert (row["min"], row["max"]) == (99.25, 104.5)


def test_one_run_has_unknown_spread_and_alike_runs_zero_spread():
    row = describe([120.0])
    assert row["n"] == 1 and row["mean"] == 120.0
    assert all(math.isnan(row[key]) for key in ("sd", "ci_low", "ci_high"))
    alike = describe([4567.8] * 3)  # e.g. throughput capped by the same machine
    assert (alike["sd"], alike["ci_low"], alike["ci_high"]) == (0, 4567.8, 4567.8)


def test_welch_matches_scipy_and_its_interval_is_of_the_difference():
    a, b = [100.0, 102.0, 104.0, 101.0], [110.0, 111.0, 113.0]
    test = welch(a, b)
    t, p = stats.ttest_ind(a, b, equal_var=False)
    assert test["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert test["p_value"] == pytest.approx(p)
    assert test["diff_ci_low"] < test["diff"] < test["diff_ci_high"] < 0
    assert all(math.isnan(value) for value in welch([1.0], [2.0, 3.0]).values())


def test_verdict_names_the_lower_perplexity_only_when_significant():
    low, high = np.array([100.0, 101, 102]), np.array([110.0, 111, 112])
    assert verdict(("lstm", "gru"), (high, low), welch(high, low)["p_value"]) == "gru better"
    assert verdict(("lstm", "gru"), (low, high), welch(low, high)["p_value"]) == "lstm better"
    alike = np.array([101.0, 100, 102])
    assert verdict(("a", "b"), (low, alike), welch(low, alike)["p_value"]) == (
        "no difference at n=3")
    assert verdict(("a", "b"), (low, [1.0, 2.0]), 0.5) == "no difference at n=2 and 3"
    assert verdict(("a", "b"), ([100.0], [200.0]), math.nan) == "no test at n=1"


def test_best_point_is_chosen_on_validation_not_test():
    summary = pd.DataFrame({
        "experiment": ["s/lr~1", "s/lr~2", "s/lr~1", "s/lr~2", "plain"],
        "sweep": ["s", "s", "s", "s", None], "mode": ["lstm", "lstm", "gru", "gru", "lstm"],
        "best_valid_ppl_mean": [130.0, 125.0, 120.0, 128.0, 1.0],
        "test_ppl_mean": [110.0, 140.0, 118.0, 100.0, 1.0]})
    best = best_points(summary)
    assert list(zip(best["mode"], best["experiment"], strict=True)) == [
        ("lstm", "s/lr~2"), ("gru", "s/lr~1")]
