"""The cache rule through the real `snakemake` command, on a subset of the real PTB: it runs after
evaluate for the experiments that ask for it, never retrains a run, and its numbers reach the
tables."""

import json

import pandas as pd
import pytest
from test_workflow import planned, snakemake, write_config

TINY = {"emsize": 16, "nhid": 16, "nlayers": 1, "epochs": 1, "batch_size": 8,
        "eval_batch_size": 4, "bptt": 10, "max_batches": 30}
AFTER_CACHE = {"table": 1, "compare": 1, "all": 1}


@pytest.mark.slow
def test_the_cache_runs_after_evaluate_where_asked_and_reaches_the_tables(ptb_subset, tmp_path):
    workdir = write_config(tmp_path / "work", *ptb_subset, modes=["lstm", "gru"],
                           run=["cached"], predict={"prompts": ["the"], "top_k": 2},
                           experiments={"plain": TINY,
                                        "cached": {**TINY, "cache": {"window": 50}}})
    jobs = planned(workdir, "--config", "run=[plain, cached]")
    assert jobs["cache"] == 2  # the cached experiment's runs only
    assert (jobs["train"], jobs["share"]) == (2, 2)  # the cache is no training setting: plain's
    assert jobs["batchify"] == 5  # train.b8, valid.b4, test.b4, and valid.b1, test.b1
    snakemake(workdir, "--cores", "2")
    results = workdir / "results"
    for mode in ("lstm", "gru"):
        cache = json.loads((results / f"cached/{mode}/seed1/cache.json").read_text())
        assert cache["window"] == 50 and len(cache["grid"]) == 13 * 11  # the default grids
        assert cache["valid_ppl_cache"] <= cache["valid_ppl"]
        assert (cache["lambda"] > 0) == (cache["valid_ppl_cache"] < cache["valid_ppl"])
        test = json.loads((results / f"cached/{mode}/seed1/test.json").read_text())
        # batch 1 against evaluate's batch 4: the same model on the same words
        assert cache["test_ppl"] == pytest.approx(test["test_ppl"], rel=0.05)
        assert (results / f"logs/cache/cached/{mode}/seed1.log").stat().st_size > 0
        assert (results / f"benchmarks/cache/cached/{mode}/seed1.tsv").is_file()
    runs = pd.read_csv(results / "runs.csv").set_index(["experiment", "mode"])
    cached = runs.loc[("cached", "lstm")]
    lstm = json.loads((results / "cached/lstm/seed1/cache.json").read_text())
    assert (cached["test_ppl_cache"], cached["cache_theta"], cached["cache_lambda"]) == (
        pytest.approx(lstm["test_ppl_cache"]), lstm["theta"], lstm["lambda"])
    assert "cache test ppl" in (results / "perplexity.md").read_text()
    scopes = set(pd.read_csv(results / "comparisons.csv")["scope"])
    assert {"the cache in cached", "modes in cached with the cache"} <= scopes
    snakemake(workdir, "--report", "report.html")
    report = (workdir / "report.html").read_text()
    assert "System Message" not in report and "no-cache b1 ppl" in report  # captions render
    # the cache is evaluation only: another window or none never retrains a run
    assert planned(workdir, "--config", "experiments={cached: {cache: {window: 20}}}") == {
        "cache": 2, **AFTER_CACHE}
    assert planned(workdir, "--config", "experiments={cached: {cache: null}}") == AFTER_CACHE
