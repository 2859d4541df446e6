"""The adaptive softmax through the real `snakemake` command on a PTB subset: trained tied and
untied, evaluated, with the continuous cache, predicted from, and tabulated like any run."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import rnnlm
from test_workflow import snakemake, write_config

ADAPTIVE = {"emsize": 16, "nhid": 16, "batch_size": 10, "eval_batch_size": 10, "bptt": 10,
            "epochs": 1, "max_batches": 30, "softmax": "adaptive", "cutoffs": [200, 1000],
            "cache": {"window": 20}}
EXPERIMENTS = {"tied": ADAPTIVE, "untied": {**ADAPTIVE, "tied": False, "div_value": 2.0}}


@pytest.mark.slow
def test_adaptive_runs_train_evaluate_and_predict(ptb_subset, tmp_path):
    workdir = write_config(tmp_path / "work", *ptb_subset, modes=["gru"],
                           run=list(EXPERIMENTS), experiments=EXPERIMENTS,
                           predict={"prompts": ["the company"], "top_k": 3})
    snakemake(workdir, "--cores", "2")
    runs = pd.read_csv(workdir / "results/runs.csv").set_index("experiment")
    assert sorted(runs.index) == sorted(EXPERIMENTS)
    vocab = workdir / "results/data/ptb/vocab.tsv"
    for name, exp in EXPERIMENTS.items():
        folder = workdir / f"results/{name}/gru/seed1"
        model = json.loads((folder / "model.json").read_text())
        assert (model["softmax"], model["cutoffs"]) == ("adaptive", [200, 1000])
        assert model["tied"] == exp.get("tied", True) and model["div_value"] == exp.get(
            "div_value", 4.0)
        test = json.loads((folder / "test.json").read_text())
        assert 20 < test["test_ppl"] < 5_000  # a few windows on a subset of PTB
        assert runs.loc[name, "test_ppl"] == pytest.approx(test["test_ppl"])
        cache = json.loads((folder / "cache.json").read_text())
        assert cache["window"] == 20 and cache["valid_ppl_cache"] <= cache["valid_ppl"]
        top = json.loads((folder / "predictions.json").read_text())["predictions"][0]["top"]
        assert len(top) == 3 and 0 < sum(t["prob"] for t in top) <= 1
        done = rnnlm("predict", "--run-dir", folder, "--vocab", vocab, "--prompts", "the",
                     "--top-k", "100000", "--json")
        probs = [t["prob"] for t in json.loads(done.stdout)[0]["top"]]
        assert done.returncode == 0 and np.isclose(sum(probs), 1, rtol=1e-5)  # every word
        assert rnnlm("generate", "--run-dir", folder, "--vocab", vocab, "--prompt", "the",
                     "--words", "5", "--seed", "1").returncode == 0
    dry = snakemake(workdir, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in dry.stdout + dry.stderr
