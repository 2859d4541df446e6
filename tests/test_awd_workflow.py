"""AWD-LSTM's keys through the real `snakemake` command on a PTB subset: every regulariser,
variable windows, NT-ASGD and fine-tuning, in the AWD layout (tied, nhid != emsize), in a
vanilla and a gated mode (tests/test_awd.py has each piece in all four), evaluated with and
without the continuous cache and tabulated like any run."""

import json

import pandas as pd
import pytest
from test_workflow import snakemake, write_config

from rnnlm.checkpoint import METRICS

AWD = {"emsize": 16, "nhid": 24, "nlayers": 3, "tied": True, "dropout": 0.0, "dropout_e": 0.1,
       "dropout_i": 0.3, "dropout_h": 0.2, "dropout_o": 0.3, "weight_dropout": 0.4, "alpha": 2,
       "beta": 1, "wd": 1.2e-6, "variable_bptt": True, "bptt": 10, "batch_size": 10,
       "eval_batch_size": 10, "lr": 1.0, "clip": 0.25, "optimizer": "nt-asgd", "nonmono": 1,
       "epochs": 2, "finetune_epochs": 1, "max_batches": 20, "cache": {"window": 50}}
MODES = ["rnn_relu", "lstm"]


@pytest.mark.slow
def test_a_regularised_run_and_its_cache(ptb_subset, tmp_path):
    workdir = write_config(tmp_path / "work", *ptb_subset, modes=MODES, run=["awd"],
                           experiments={"awd": AWD}, predict={"prompts": ["the"], "top_k": 3})
    snakemake(workdir, "--cores", "2")
    runs = pd.read_csv(workdir / "results/runs.csv").set_index("mode")
    assert sorted(runs.index) == sorted(MODES)
    for mode in MODES:
        folder = workdir / f"results/awd/{mode}/seed1"
        summary = json.loads((folder / "summary.json").read_text())
        settings = summary["hyperparameters"]
        assert {k: settings[k] for k in AWD if k != "cache"} == {
            k: v for k, v in AWD.items() if k != "cache"}
        assert summary["averaged_from_epoch"] in (2, 3)  # NT-ASGD's trigger, or fine-tuning's
        metrics = pd.read_csv(folder / "metrics.csv")
        assert list(metrics.columns) == list(METRICS) and list(metrics["epoch"]) == [1, 2, 3]
        assert (metrics["lr"] == 1.0).all()
        model = json.loads((folder / "model.json").read_text())
        assert model["weight_dropout"] == 0.4 and model["nhid"] == 24
        test = json.loads((folder / "test.json").read_text())
        assert 20 < test["test_ppl"] < 5_000  # a few windows trained on a subset of PTB
        log = (workdir / f"results/logs/train/awd/{mode}/seed1.log").read_text()
        assert "fine-tuning from the weights of epoch" in log
        cache = json.loads((folder / "cache.json").read_text())
        assert cache["window"] == 50 and cache["valid_ppl_cache"] <= cache["valid_ppl"]
        assert runs.loc[mode, "test_ppl_cache"] == pytest.approx(cache["test_ppl_cache"])
    dry = snakemake(workdir, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in dry.stdout + dry.stderr
