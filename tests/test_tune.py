"""Tunes without Snakemake (rnnlm.tune, rnnlm.plan): the drawn points, the rungs' choices, the
tune's table and plot, and one clear ConfigError per bad tune naming the key."""

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from rnnlm.checkpoint import METRICS, write_metrics
from rnnlm.config import ConfigError, Workflow
from rnnlm.io import RnnlmError, read_json
from rnnlm.plan.expand import make_plan
from rnnlm.plan.flags import train_flags
from rnnlm.plan.runs import Run
from rnnlm.tune.halving import promoted, rung_sizes, select, write_rung
from rnnlm.tune.space import draw
from rnnlm.tune_report import learning_curves, trial_rows, write_tune

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
SPACE = {"lr": {"log_uniform": [0.1, 10]}, "dropout": {"uniform": [0, 0.6]},
         "nhid": {"choice": [100, 200]}, "nlayers": {"int_uniform": [1, 3]}}
TUNE = {"base": "tutorial", "trials": 27, "seed": 7, "rungs": [1, 3, 9], "eta": 3,
        "seeds": [1, 2, 3], "space": SPACE}


@pytest.fixture(scope="module")
def workflow():
    return Workflow(REPO / "workflow")


def plan(workflow, tunes, run=("cells",), **over):
    config = {**copy.deepcopy(CONFIG), "tunes": tunes, "run": list(run), **over}
    return make_plan(config, workflow)


def test_a_trials_point_is_a_function_of_the_seed_and_its_number():
    points = [draw(SPACE, 7, i) for i in range(1, 201)]
    assert points == [draw(SPACE, 7, i) for i in range(1, 201)]  # a rerun draws the same
    assert points != [draw(SPACE, 8, i) for i in range(1, 201)]
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 200
    more = {**SPACE, "clip": {"uniform": [0.1, 1]}}  # a new key leaves the others' values
    assert [{k: v for k, v in draw(more, 7, i).items() if k != "clip"}
            for i in range(1, 201)] == points
    lrs = np.log10([p["lr"] for p in points])
    assert lrs.min() >= -1 and lrs.max() <= 1 and abs(np.median(lrs)) < 0.25  # log-uniform
    assert 0 <= min(p["dropout"] for p in points) and max(p["dropout"] for p in points) <= 0.6
    assert {p["nhid"] for p in points} == {100, 200}
    assert {p["nlayers"] for p in points} == {1, 2, 3}  # both ends included
    assert all(isinstance(p["nlayers"], int) for p in points)


def test_successive_halving_keeps_the_best_third_on_validation():
    assert rung_sizes(27, [1, 3, 9], 3) == [27, 9, 3]
    assert rung_sizes(9, [1, 2, 4], 3) == [9, 3, 1] and rung_sizes(10, [1, 2], 4) == [10, 3]
    results = {1: 120.0, 2: None, 3: 110.0, 4: 110.0, 5: 300.0}
    assert promoted(results, 3) == [3, 4, 1]  # ties to the lower trial; diverged never
    assert promoted({1: None, 2: 150.0}, 2) == [2]
    with pytest.raises(RnnlmError, match="tune t, mode lstm: all 2 trials diverged; narrow"):
        select({1: None, 2: None}, 1, "tune t, mode lstm")


def test_every_mode_trains_the_same_points_to_each_rung(workflow):
    p = plan(workflow, {"cells": TUNE})
    tune = p.tunes["cells"]
    assert tune.sizes == (27, 9, 3) and len(tune.points) == 27
    assert len(p.trials) == 27 * 3 and tune.points[0] == draw(SPACE, 7, 1)
    name = tune.trial(5, 1)
    assert name == "cells/trial~5/epochs~3" and tune.locate(name) == (5, 1)
    settings = p.trials[name]
    assert settings["epochs"] == 3 and settings["seeds"] == [1]
    assert {k: settings[k] for k in SPACE} == tune.points[4]
    rung_flags = train_flags(p.trials[tune.trial(5, 2)], 1, "lstm")
    assert train_flags(settings, 1, "lstm") == rung_flags.replace(
        "--epochs 9", "--epochs 3")  # rungs differ in epochs only
    # the final runs: every mode, the tune's seeds; each mode's settings are its choice's
    assert [(r.mode, r.seed) for r in p.runs if r.experiment == "cells"][:3] == [
        ("rnn_relu", 1), ("rnn_relu", 2), ("rnn_relu", 3)]
    assert p.tuned("cells", 5) == {**p.trials["cells/trial~5/epochs~9"], "seeds": [1, 2, 3]}
    assert "cells" in p.plain_experiments() and not any("trial~" in r.experiment
                                                         for r in p.runs)


@pytest.mark.parametrize(("tune", "problem"), [
    ({"space": {"lr_rate": {"uniform": [0, 1]}}}, "tunes.cells.space: 'lr_rate' is not an "
     "experiment key"),
    ({"space": {"lr": {"uniform": [2, 1]}}}, "tunes.cells.space.lr.uniform: lo 2 must be below "
     "hi 1"),
    ({"space": {"lr": {"log_uniform": [0, 1]}}}, "tunes.cells.space.lr.log_uniform: lo 0 must "
     "be above 0"),
    ({"space": {"dropout": {"uniform": [0.5, 1.5]}}}, "tunes.cells.space.dropout: "),
    ({"space": {"nhid": {"choice": [100, -2]}}}, "tunes.cells.space.nhid: -2 is less than the "
     "minimum of 1 (at trial "),
    ({"space": {"lr": {"gaussian": [1, 2]}}}, "tunes.cells.space.lr: "),
    ({"space": {"epochs": {"int_uniform": [1, 3]}}}, "tunes.cells.space.epochs: cannot be "
     "tuned: the rungs set epochs"),
    ({"space": {"seed": {"int_uniform": [1, 3]}}}, "tunes.cells.space.seed: cannot be tuned"),
    ({"rungs": [1, 3, 3]}, "tunes.cells.rungs: [1, 3, 3] must increase"),
    ({"eta": 1}, "tunes.cells.eta: 1 is less than the minimum of 2"),
    ({"trials": 0}, "tunes.cells.trials: 0 is less than the minimum of 1"),
    ({"base": "nope"}, "tunes.cells.base: 'nope' is not in experiments nor a preset"),
    ({"space": {"lr_schedule": {"choice": ["fixed"]}, "optimizer": {"choice": ["nt-asgd"]}}},
     "tunes.cells.lr_schedule: fixed contradicts optimizer nt-asgd"),
])
def test_bad_tunes_name_the_key_in_one_line(workflow, tune, problem):
    with pytest.raises(ConfigError) as caught:
        plan(workflow, {"cells": {**TUNE, **tune}})
    message = str(caught.value)
    assert problem in message and "\n" not in message


@pytest.mark.parametrize(("over", "problem"), [
    ({"experiments": {"tutorial": CONFIG["experiments"]["tutorial"],
                      "cells": CONFIG["experiments"]["tutorial"]}}, "tunes.cells: the name is "
     "an experiment's, a sweep's or a preset's too; rename the tune"),
    ({"sweeps": {"cells": {"base": "tutorial", "grid": {"lr": [1]}}}}, "tunes.cells: the name "),
    ({"experiments": {"tutorial": {**CONFIG["experiments"]["tutorial"],
                                   "finetune_epochs": 2}}},
     "tunes.cells.base: fine-tuning ends a run"),
])
def test_a_tune_named_like_an_experiment_or_a_sweep_is_refused(workflow, over, problem):
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.").replace("'", ".")):
        plan(workflow, {"cells": TUNE}, **over)


def test_a_tunes_final_runs_share_nothing_with_a_run_of_its_base_settings(workflow):
    """Before the tune has run its final runs hold the base's settings, which an untuned run of
    the same epochs and seeds equals: the chosen point will not."""
    untuned = {**CONFIG["experiments"]["tutorial"], "epochs": 9, "seeds": [1, 2, 3]}
    p = plan(workflow, {"cells": TUNE}, run=("cells", "untuned"),
             experiments={**CONFIG["experiments"], "untuned": untuned})
    assert p.training_key(Run("cells", "lstm", 1)) == p.training_key(Run("untuned", "lstm", 1))
    assert p.shared() == {}


def test_a_tunes_final_runs_at_the_trials_seed_share_the_chosen_trials_training(workflow):
    p = plan(workflow, {"cells": TUNE})
    shares = p.tuned_shares()
    assert shares == [Run("cells", mode, 1) for mode in p.config["modes"]]
    trainer = p.tuned_trainer(Run("cells", "gru", 1), 5)
    assert trainer == Run("cells/trial~5/epochs~9", "gru", 1)
    # the trainer's `rnnlm train` flags are the final run's at that choice, data and seed alike
    assert train_flags(p.tuned("cells", 5), 1, "lstm") == train_flags(
        p.trials[trainer.experiment], 1, "lstm")
    assert p.batch_size("cells", "train") == p.batch_size(trainer.experiment, "train")
    other = plan(workflow, {"cells": {**TUNE, "seeds": [2, 3]}})
    assert other.tuned_shares() == []  # no final run at the trials' seed 1


def test_a_tune_named_like_a_preset_is_refused(workflow):
    with pytest.raises(ConfigError, match="tunes.zaremba-small: the name is"):
        plan(workflow, {"zaremba-small": TUNE}, run=["zaremba-small"])


def fake_trial(folder, ppls, point, start=0, tokens=500):
    """A trial's run folder: metrics of each epoch's validation ppl, and its summary."""
    folder.mkdir(parents=True)
    rows = [{"epoch": e, "lr": 1.0, "train_loss": 1.0, "train_ppl": 2.0,
             "valid_loss": math.log(p) if p else float("nan"), "valid_ppl": p or float("nan"),
             "seconds": 2.0, "tokens_per_s": 250.0, "tokens_seen": e * tokens}
            for e, p in enumerate(ppls, 1)]
    write_metrics(folder / "metrics.csv", rows, METRICS)
    best = min((p for p in ppls if p), default=None)
    (folder / "summary.json").write_text(json.dumps({
        "best_valid_ppl": best, "diverged": None if best else "training loss became nan",
        "hyperparameters": {**point, "epochs": len(ppls)}}))
    return str(folder)


def test_the_tune_table_and_plot_say_what_went_on_and_what_it_cost(tmp_path):
    points = {1: {"lr": 1.0}, 2: {"lr": 2.0}, 3: {"lr": 9.0}}
    curves = {1: [150, 130], 2: [140, 120], 3: [None]}
    files = []
    for mode, worse in (("lstm", 0), ("gru", 5)):
        first = {i: fake_trial(tmp_path / mode / f"t{i}e1", [p and p + worse for p in c[:1]],
                               points[i]) for i, c in curves.items()}
        files.append(tmp_path / f"{mode}1.json")
        write_rung(files[-1], tune="t", mode=mode, rung=0, rungs=[1, 2], eta=3, trials=first,
                   keys=["lr"])
        assert read_json(files[-1])["promoted"] == [2]
        second = {2: fake_trial(tmp_path / mode / "t2e2", [p + worse for p in curves[2]],
                                points[2])}
        files.append(tmp_path / f"{mode}2.json")
        write_rung(files[-1], tune="t", mode=mode, rung=1, rungs=[1, 2], eta=3, trials=second,
                   keys=["lr"])
    table = trial_rows(files)
    assert len(table) == 8 and table["diverged"].sum() == 2
    lstm = table[table["mode"] == "lstm"].set_index(["rung", "trial"])
    assert lstm.loc[(1, 2), "continued"] and not lstm.loc[(1, 1), "continued"]
    assert lstm.loc[(2, 2), "chosen"] and lstm.loc[(2, 2), "valid_ppl"] == 120
    assert lstm.loc[(2, 2), "train_tokens"] == 500  # its second epoch only: the first was rung 1
    out = {name: tmp_path / f"t.{name}" for name in ("csv", "md", "html", "png")}
    write_tune(files, ["lr"], out["csv"], out["md"], out["html"], out["png"])
    assert len(pd.read_csv(out["csv"])) == 8
    md = out["md"].read_text()
    assert "| lstm | 2 | 2 | 120.00 | 4 | 2,000 | 8 |" in md  # choice, point, ppl, budget
    assert "diverged: it ranks last" in md
    lines = {line.get_gid(): line for line in learning_curves(table, "t").axes[0].lines
             if line.get_gid()}
    assert set(lines) == {f"{m}/trial{i}" for m in ("lstm", "gru") for i in (1, 2, 3)}
    assert lines["lstm/trial2"].get_linewidth() > lines["lstm/trial1"].get_linewidth()
    assert list(lines["gru/trial2"].get_ydata()) == [145, 125]  # the furthest rung's curve
