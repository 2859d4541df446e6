"""A tune through the real `snakemake` command on a PTB subset, as a new user would run one:
9 trials, rungs [1, 2, 4], eta 3, two modes (lstm and the Mogrifier LSTM, the comparison the
tune exists for: issue 34), the final runs cached and predicting; one continuing trial killed
and the same command run again."""

import json
import math
import os
import signal

import pandas as pd
import pytest
from faults.pipeline import (
    group_process,
    metrics_epochs,
    read_checkpoint,
    start_snakemake,
    wait_for,
)
from test_workflow import snakemake, write_config

MODES = ["lstm", "mogrifier"]
BASE = {"emsize": 16, "nhid": 16, "nlayers": 1, "bptt": 10, "batch_size": 10,
        "eval_batch_size": 10, "max_batches": 30, "seed": 1, "mogrifier_rounds": 3,
        "mogrifier_rank": 4, "cache": {"window": 20}}
TUNE = {"base": "small", "trials": 9, "seed": 7, "rungs": [1, 2, 4], "eta": 3, "seeds": [1, 2],
        "space": {"lr": {"log_uniform": [0.1, 3]}, "dropout": {"uniform": [0, 0.5]},
                  "nhid": {"choice": [8, 16]}}}


def job_logs(workdir, mode, epochs):
    return sorted((workdir / "results/logs/train/fair").glob(f"trial~*/epochs~{epochs}/{mode}/"
                                                           "seed1.log"))


@pytest.mark.slow
def test_a_tune_halves_continues_and_compares(ptb_subset, tmp_path):
    workdir = write_config(tmp_path / "work", *ptb_subset, modes=MODES, run=["fair"],
                           experiments={"small": BASE}, tunes={"fair": TUNE},
                           predict={"prompts": ["the"], "top_k": 3})
    # Kill the pipeline while a trial of the last rung is continuing: epoch 3 done, 4 not yet
    job = start_snakemake(workdir, "--cores", "2")
    last = workdir / "results/fair"

    def continuing():
        records = [read_checkpoint(run) for run in last.glob("trial~*/epochs~4/*/seed1")]
        return any(r and r["state"]["epoch"] == 4 for r in records)

    wait_for(continuing, job, timeout=900, what="a last-rung trial in its 4th epoch")
    killed = next(run for run in last.glob("trial~*/epochs~4/*/seed1")
                  if (read_checkpoint(run) or {"state": {}})["state"].get("epoch") == 4)
    rel = killed.relative_to(workdir)
    os.kill(group_process(job, "train", str(rel)), signal.SIGKILL)  # that trial's process
    assert job.wait(timeout=900) == 1
    snakemake(workdir, "--cores", "2")  # the same command again

    log = (workdir / "results/logs/train" / rel.relative_to("results")).with_suffix(".log")
    assert f"resuming from {rel}/checkpoint: epoch 4 after 0 of" in log.read_text()
    for mode in MODES:  # 9 + 3 + 1 trial jobs; the continued ones' epochs once each
        assert [len(job_logs(workdir, mode, e)) for e in (1, 2, 4)] == [9, 3, 1]
        for epochs in (2, 4):
            for run in last.glob(f"trial~*/epochs~{epochs}/{mode}/seed1"):
                assert metrics_epochs(run / "metrics.csv") == list(range(1, epochs + 1))
                assert not (run / "checkpoint").exists() and (run / "state").is_dir()

    table = pd.read_csv(workdir / "results/tunes/fair.csv")
    assert len(table) == 2 * 13 and set(table["mode"]) == set(MODES)
    first = table[table["rung"] == 1].pivot(index="trial", columns="mode", values="lr")
    assert (first["lstm"] == first["mogrifier"]).all()  # every mode at the same points
    for mode, rows in table.groupby("mode"):
        assert list(rows.groupby("rung").size()) == [9, 3, 1]
        for rung, went_on in ((1, 3), (2, 1), (3, 0)):
            at = rows[rows["rung"] == rung]
            assert at["continued"].sum() == went_on
            best = at.sort_values(["valid_ppl", "trial"])["trial"].head(went_on)
            assert set(at.loc[at["continued"], "trial"]) == set(best)  # chosen on validation
        chosen = rows[rows["chosen"]]
        assert len(chosen) == 1 and chosen["rung"].item() == 3
        per_epoch = rows["train_tokens"].iloc[0]  # each job: its own epochs only
        new_epochs = rows["rung"].map({1: 1, 2: 1, 3: 2})
        assert (rows["train_tokens"] == per_epoch * new_epochs).all() and per_epoch == 30 * 100
        point = {key: chosen[key].item() for key in TUNE["space"]}
        trial = f"results/fair/trial~{chosen['trial'].item()}/epochs~4/{mode}/seed1"
        for seed in TUNE["seeds"]:  # the final runs: the chosen point, tested once
            run = workdir / f"results/fair/{mode}/seed{seed}"
            summary = json.loads((run / "summary.json").read_text())
            settings = summary["hyperparameters"]
            assert {key: settings[key] for key in point} == pytest.approx(point)
            assert settings["epochs"] == 4 and settings["seed"] == seed
            test_ppl = json.loads((run / "test.json").read_text())["test_ppl"]
            cache = json.loads((run / "cache.json").read_text())  # the cache on every cell
            assert test_ppl > 1 and math.isfinite(cache["test_ppl_cache"]) and cache["window"] == 20
            # seed 1 is the trials' seed: the chosen trial trained it, and is shared, not redone
            trained = (workdir / "results/logs/train/fair" / mode / f"seed{seed}.log").exists()
            assert summary.get("shared_from") == (trial if seed == 1 else None)
            assert trained == (seed != 1)
        predictions = json.loads((workdir / f"results/fair/{mode}/seed1/predictions.json")
                                 .read_text())
        assert predictions, mode
        shared = workdir / f"results/fair/{mode}/seed1/model.params"
        assert shared.read_bytes() == (workdir / trial / "model.params").read_bytes()
    spent = table.groupby("mode")["train_tokens"].sum()
    assert spent["lstm"] == spent["mogrifier"] > 0  # the same budget, in tokens, for every mode
    md = (workdir / "results/tunes/fair.md").read_text()
    assert "Chosen points and budget per mode" in md and "Nothing was chosen on test" in md
    assert (workdir / "results/tunes/fair.png").stat().st_size > 0
    perplexity = pd.read_csv(workdir / "results/perplexity.csv")
    assert set(perplexity["experiment"]) == {"fair"} and list(perplexity["n"]) == [2, 2]
    runs = pd.read_csv(workdir / "results/runs.csv")
    assert sorted(runs.loc[runs["trained_as"].notna(), "seed"]) == [1, 1]
    assert "Trained once" in (workdir / "results/perplexity.md").read_text()
    comparisons = pd.read_csv(workdir / "results/comparisons.csv")
    assert len(comparisons) >= 1
    dry = snakemake(workdir, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
