"""The cache and dynamic_eval rules through the real `snakemake` command, on a subset of the real
PTB: they run after evaluate for the experiments that ask for them, never retrain a run, and
their numbers reach the tables, the plots and the report."""

import json
import re

import pandas as pd
import pytest
from test_workflow import planned, snakemake, write_config

from rnnlm.memory import dynamic_mb

TINY = {"emsize": 16, "nhid": 16, "nlayers": 1, "epochs": 1, "batch_size": 8,
        "eval_batch_size": 4, "bptt": 10, "max_batches": 30}
AFTER_CACHE = {"table": 1, "compare": 1, "all": 1}
DYNAMIC = {"lr": [1.0e-4, 1.0e-3], "decay": [0.01], "ms_windows": 20}


@pytest.mark.slow
def test_the_cache_runs_after_evaluate_where_asked_and_reaches_the_tables(ptb_subset, tmp_path):
    workdir = write_config(tmp_path / "work", *ptb_subset, modes=["lstm", "gru"],
                           run=["cached", "dynamic"], predict={"prompts": ["the"], "top_k": 2},
                           experiments={"plain": TINY,
                                        "cached": {**TINY, "cache": {"window": 50},
                                                   "dynamic_eval": DYNAMIC},
                                        "dynamic": {**TINY, "dynamic_eval": DYNAMIC}})
    jobs = planned(workdir, "--config", "run=[plain, cached, dynamic]")
    assert (jobs["cache"], jobs["dynamic_eval"], jobs["dynamic_plot"]) == (2, 4, 2)
    assert (jobs["train"], jobs["share"]) == (2, 4)  # neither is a training setting: plain's
    assert jobs["batchify"] == 6  # train.b8, valid.b4, test.b4, valid.b1, test.b1, train.b100
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
    check_dynamic_eval(results, runs)
    snakemake(workdir, "--report", "report.html")
    report = (workdir / "report.html").read_text()
    assert "System Message" not in report and "no-cache b1 ppl" in report  # captions render
    # the cache is evaluation only: another window or none never retrains a run
    assert planned(workdir, "--config", "experiments={cached: {cache: {window: 20}}}") == {
        "cache": 2, "dynamic_eval": 2, "dynamic_plot": 1, **AFTER_CACHE}  # the cache on top
    assert planned(workdir, "--config", "experiments={cached: {cache: null}}") == {
        "dynamic_eval": 2, "dynamic_plot": 1, **AFTER_CACHE}  # it had the cache on top
    # another grid reruns the dynamic evaluation, its plot and the tables, never a training
    assert planned(workdir, "--config", "experiments={dynamic: {dynamic_eval: {lr: [2.0e-4]}}}"
                   ) == {"dynamic_eval": 2, "dynamic_plot": 1, **AFTER_CACHE}
    # mem_mb is rnnlm.memory's estimate of the job, its two worker processes included
    dry = snakemake(workdir, "--dry-run", "--cores", "2", "--forcerun", "dynamic_eval",
                    "--config", "threads=2").stdout
    [declared] = re.findall(r"rule dynamic_eval:\n(?:    .*\n)*?    wildcards: experiment=cached, "
                            r"mode=lstm, seed=1\n(?:    .*\n)*?    resources: .*?mem_mb=(\d+)", dry)
    data = next((results / "data").iterdir())
    assert int(declared) == dynamic_mb(results / "cached/lstm/seed1/model.json", 5,
                                       data / "train.b100.npy", data / "valid.b1.npy",
                                       data / "test.b1.npy", 2, True)


def check_dynamic_eval(results, runs):
    """dynamic_eval.json with and without the cache on top, its columns in the tables, the
    comparisons and the plot."""
    for experiment in ("cached", "dynamic"):
        for mode in ("lstm", "gru"):
            folder = results / f"{experiment}/{mode}/seed1"
            found = json.loads((folder / "dynamic_eval.json").read_text())
            assert [(p["lr"], p["decay"]) for p in found["grid"]] == [
                (0, 0), (1e-4, 0.01), (1e-3, 0.01)]  # lr 0 always in it
            assert (found["segment"], found["rule"], found["ms_windows"]) == (5, "rms", 20)
            assert found["valid_ppl_dynamic"] <= found["valid_ppl"]
            cache = json.loads((results / f"cached/{mode}/seed1/cache.json").read_text())
            assert found["test_ppl"] == pytest.approx(cache["test_ppl"], rel=1e-6)  # batch 1
            assert ("test_ppl_dynamic_cache" in found) == (experiment == "cached")
            row = runs.loc[(experiment, mode)]
            assert (row["test_ppl_dynamic"], row["dynamic_lr"]) == (
                pytest.approx(found["test_ppl_dynamic"]), found["lr"])
    perplexity = (results / "perplexity.md").read_text()
    assert "dynamic test ppl" in perplexity and "dynamic+cache test ppl" in perplexity
    scopes = set(pd.read_csv(results / "comparisons.csv")["scope"])
    assert {"dynamic evaluation in dynamic",
            "dynamic evaluation and the cache in cached"} <= scopes
    assert (results / "plots/dynamic_eval.dynamic.png").stat().st_size > 0
