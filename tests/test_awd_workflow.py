"""AWD-LSTM's keys through the real `snakemake` command on a PTB subset: every regulariser,
variable windows, NT-ASGD and fine-tuning in every mode, in the AWD layout (tied, nhid !=
emsize), evaluated and tabulated like any run."""

import json

import pandas as pd
import pytest
import yaml
from test_workflow import MODES, snakemake

from rnnlm.checkpoint import METRICS

AWD = {"emsize": 16, "nhid": 24, "nlayers": 3, "tied": True, "dropout": 0.0, "dropout_e": 0.1,
       "dropout_i": 0.3, "dropout_h": 0.2, "dropout_o": 0.3, "weight_dropout": 0.4, "alpha": 2,
       "beta": 1, "wd": 1.2e-6, "variable_bptt": True, "bptt": 10, "batch_size": 10,
       "eval_batch_size": 10, "lr": 1.0, "clip": 0.25, "optimizer": "nt-asgd", "nonmono": 1,
       "epochs": 2, "finetune_epochs": 1, "max_batches": 20}


@pytest.mark.slow
def test_a_regularised_run_trains_evaluates_and_is_tabulated_in_every_mode(shared_ptb, tmp_path):
    config = {"corpora": {"ptb": {"url": shared_ptb.as_uri()}}, "modes": MODES, "run": ["awd"],
              "experiments": {"awd": AWD}, "threads": 1, "predict": {"top_k": 3}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", "2")
    runs = pd.read_csv(tmp_path / "results/runs.csv")
    assert sorted(runs["mode"]) == sorted(MODES)
    for mode in MODES:
        folder = tmp_path / f"results/awd/{mode}/seed1"
        summary = json.loads((folder / "summary.json").read_text())
        settings = summary["hyperparameters"]
        assert {k: settings[k] for k in AWD} == AWD
        assert summary["averaged_from_epoch"] in (2, 3)  # NT-ASGD's trigger, or fine-tuning's
        metrics = pd.read_csv(folder / "metrics.csv")
        assert list(metrics.columns) == list(METRICS) and list(metrics["epoch"]) == [1, 2, 3]
        assert (metrics["lr"] == 1.0).all()
        model = json.loads((folder / "model.json").read_text())
        assert model["weight_dropout"] == 0.4 and model["nhid"] == 24
        test = json.loads((folder / "test.json").read_text())
        assert 50 < test["test_ppl"] < 10_000  # PTB's 10,000 words, a few windows trained
        log = (tmp_path / f"results/logs/train/awd/{mode}/seed1.log").read_text()
        assert "fine-tuning from the weights of epoch" in log
    dry = snakemake(tmp_path, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in dry.stdout + dry.stderr
