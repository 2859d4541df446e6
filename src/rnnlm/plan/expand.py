"""The config's expansion into experiments: plain ones and presets, the points of sweeps and the
trials of tunes, each validated as an experiment, then the rules across keys that the schema
cannot say; a ConfigError names the key of the first problem."""

import dataclasses
import itertools

from rnnlm.config import NAME_MAX, RESERVED, ConfigError, resolve, typed, validated
from rnnlm.plan.flags import MOGRIFIER_FLAGS
from rnnlm.plan.runs import Plan, Run, Tune
from rnnlm.plan.sizes import oversized

NOT_SWEPT = ("seed", "seeds", "corpus")  # a sweep's points share its base's seeds and corpus


def make_plan(config, workflow):
    """The Plan of ``config`` (a Snakemake config dict) in ``workflow`` (rnnlm.config.Workflow);
    a ConfigError names the key of the first problem."""
    config = resolve(config, workflow)
    for name in config["tunes"]:
        if name in config["experiments"] or name in config["sweeps"] or name in workflow.presets:
            raise ConfigError(f"tunes.{name}", "the name is an experiment's, a sweep's or a "
                              "preset's too; rename the tune")
    experiments, sweeps, tunes, trials = {}, {}, {}, {}
    for name in config["run"]:
        if name in config["sweeps"]:
            sweeps[name] = expand_sweep(name, config, workflow)
            experiments.update(sweeps[name])
        elif name in config["tunes"]:
            tunes[name], experiments[name], trial_settings = expand_tune(name, config, workflow)
            trials.update(trial_settings)
        elif name in config["experiments"]:
            experiments[name] = config["experiments"][name]
        else:
            raise ConfigError("run", f"{name!r} is not in experiments (known: "
                              f"{', '.join(sorted(config['experiments']))}), sweeps ("
                              f"{', '.join(sorted(config['sweeps'])) or 'none'}), tunes ("
                              f"{', '.join(sorted(config['tunes'])) or 'none'}) nor a preset "
                              f"(workflow/presets/: {', '.join(sorted(workflow.presets))})")
    check(config, {**experiments, **trials})
    for exp in experiments.values():
        exp["seeds"] = exp["seeds"] or [exp["seed"]]
    runs = [Run(name, mode, seed) for name, exp in experiments.items()
            for mode in config["modes"] for seed in exp["seeds"]]
    used = dict.fromkeys(exp["corpus"] for exp in experiments.values())
    published = {name: workflow.presets[name][1]["test"] for name in experiments
                 if name in workflow.presets and workflow.presets[name][1].get("test")}
    return Plan(config, experiments, runs, {name: config["corpora"][name] for name in used},
                {name: list(points) for name, points in sweeps.items()}, published, tunes,
                trials)


def expand_sweep(name, config, workflow):
    """The points of sweep ``name`` as experiments named by Paramspace: every combination of
    the grid's values over its base experiment, each validated as an experiment."""
    import pandas as pd
    from snakemake.utils import Paramspace

    sweep, key = config["sweeps"][name], f"sweeps.{name}"
    if name in config["experiments"] or name in workflow.presets:
        raise ConfigError(key, "the name is an experiment's or a preset's too; rename the sweep")
    if sweep["base"] not in config["experiments"]:
        raise ConfigError(f"{key}.base", f"{sweep['base']!r} is not in experiments nor a preset")
    base, grid = config["experiments"][sweep["base"]], sweep["grid"]
    for swept in grid:
        if swept not in base:
            raise ConfigError(f"{key}.grid", f"{swept!r} is not an experiment key (known: "
                              f"{', '.join(k for k in base if k not in NOT_SWEPT)})")
        if swept in NOT_SWEPT:
            raise ConfigError(f"{key}.grid.{swept}", "cannot be swept: a sweep's points share "
                              "its base's seeds and corpus; set them on the base experiment")
    points = [as_experiment(dict(zip(grid, values, strict=True)), workflow)
              for values in itertools.product(*grid.values())]
    names = Paramspace(pd.DataFrame(points)).instance_patterns
    experiments = {}
    for point, path in zip(points, names, strict=True):
        for folder in path.split("/"):
            check_folder(folder, f"{key}.grid.{folder.partition('~')[0]}")
        doc = {"experiments": {name: {**base, **point}}}
        validated(doc, workflow.validator, lambda at, msg, point=point: ConfigError(
            f"{key}.grid.{at.rpartition('.')[2]}", f"{msg} (at the point {point})"))
        experiments[f"{name}/{path}"] = doc["experiments"][name]
    return experiments


def expand_tune(name, config, workflow):
    """A tune's Tune, the settings of its final runs' experiment (the base's, to the last
    rung's epochs, with the tune's seeds: each mode's point is known once the tune has run) and
    its trials' experiments, every drawn point validated as an experiment."""
    from rnnlm.tune.halving import rung_sizes
    from rnnlm.tune.space import check_space, draw

    tune, key = config["tunes"][name], f"tunes.{name}"
    if tune["base"] not in config["experiments"]:
        raise ConfigError(f"{key}.base", f"{tune['base']!r} is not in experiments nor a preset")
    base, rungs = config["experiments"][tune["base"]], tune["rungs"]
    if any(b <= a for a, b in itertools.pairwise(rungs)):
        raise ConfigError(f"{key}.rungs", f"{rungs} must increase: the epochs trained by the "
                          "end of each rung")
    for swept in tune["space"]:
        if swept not in base:
            raise ConfigError(f"{key}.space", f"{swept!r} is not an experiment key (known: "
                              f"{', '.join(k for k in base if k not in NOT_SWEPT)})")
        if swept in (*NOT_SWEPT, "epochs"):
            raise ConfigError(f"{key}.space.{swept}", "cannot be tuned: the rungs set epochs, "
                              "and the trials share the base's seed and corpus")
    check_space(tune["space"], key)
    for epochs in rungs:
        check_folder(f"epochs~{epochs}", f"{key}.rungs")
    if base["finetune_epochs"] or "finetune_epochs" in tune["space"]:
        at = f"{key}.space.finetune_epochs" if "finetune_epochs" in tune["space"] else f"{key}.base"
        raise ConfigError(at, "fine-tuning ends a run: a trial cannot continue past "
                          "it to the next rung; tune a base without finetune_epochs")
    seed = (base["seeds"] or [base["seed"]])[0]
    plan = Tune(name, (), tuple(rungs), tuple(rung_sizes(tune["trials"], rungs, tune["eta"])),
                tune["eta"], seed)
    points, trials = [], {}
    for i in range(1, tune["trials"] + 1):
        point = as_experiment(draw(tune["space"], tune["seed"], i), workflow)
        points.append(point)
        for rung, epochs in enumerate(rungs):
            doc = {"experiments": {name: {**base, **point, "epochs": epochs, "seeds": [seed]}}}
            validated(doc, workflow.validator, lambda at, msg, i=i, point=point: ConfigError(
                f"{key}.space.{at.rpartition('.')[2]}", f"{msg} (at trial {i}'s point {point})"))
            trials[plan.trial(i, rung)] = doc["experiments"][name]
    final = {**base, "epochs": rungs[-1], "seeds": tune["seeds"]}
    return dataclasses.replace(plan, points=tuple(points)), final, trials


def as_experiment(point, workflow):
    """A sweep's or a tune's point typed as an experiment's keys are: a whole number given as a
    float (2.0) for an integer key is the int (2), so its folder is `key~2` and its runs are 2's."""
    return typed({"experiments": {"point": point}}, workflow.schema)["experiments"]["point"]


def check_folder(folder, key):
    """A ConfigError naming ``key`` if ``folder`` (`key~value`) is too long for a file name."""
    size = len(folder.encode())
    if size > NAME_MAX:
        raise ConfigError(key, f"the folder {folder[:30]!r}... would be {size} bytes, more than "
                          f"a file name's {NAME_MAX}; use a shorter value")


def check_mogrifier(config, exp, key, head):
    """Mode mogrifier's keys: a rank its matrices can have; with it, no export (see
    the README); varied by a grid or a space only if it trains (else its points are equal)."""
    section = key.split(".")[0]
    within = {"sweeps": "grid", "tunes": "space"}.get(section, "")
    varied = config[section].get(head, {}).get(within, {}) if within else {}
    if "mogrifier" not in config["modes"]:
        for name in MOGRIFIER_FLAGS:
            if name in varied:
                raise ConfigError(f"{key}.{within}.{name}", "only mode mogrifier reads it, and "
                                  "modes has no mogrifier: every point would train the same; "
                                  "add mogrifier to modes or drop the key")
        return
    bound = min(exp["nhid"], exp["emsize"])
    if exp["mogrifier_rank"] > bound:
        name = "mogrifier_rank"
        raise ConfigError(f"{key}.{within}.{name}" if name in varied else f"{key}.{name}",
                          f"{exp[name]} is above nhid and emsize's smaller, {bound}: a rank "
                          f"of a matrix between them is at most {bound}; use 1 to {bound}, or "
                          "0 for full matrices")
    if config["export"]:
        raise ConfigError("export", "mode mogrifier cannot be exported: model.onnx has no "
                          "graph of its rounds yet and PyTorch's RNNModel no such cell; drop "
                          "export or mogrifier from modes")


def check(config, experiments):
    """The rules across keys that the schema cannot say, for the experiments that run."""
    for section in ("experiments", "sweeps", "tunes"):
        for name in config[section]:
            if name in RESERVED:
                raise ConfigError(f"{section}.{name}", f"the name is reserved for results/{name}/")
    for name, exp in experiments.items():
        head = name.split("/")[0]
        key = (f"tunes.{head}" if head in config["tunes"] else f"experiments.{name}"
               if "/" not in name else f"sweeps.{head}")
        if exp["optimizer"] == "nt-asgd" and exp["lr_schedule"] == "fixed":
            raise ConfigError(f"{key}.lr_schedule", "fixed contradicts optimizer nt-asgd, "
                              "which keeps lr constant and anneals by averaging (awd-lstm-lm); "
                              "drop lr_schedule or use optimizer sgd")
        cutoffs = exp["cutoffs"]
        if exp["softmax"] == "adaptive" and not cutoffs:
            raise ConfigError(f"{key}.cutoffs", "softmax adaptive needs cutoffs, the word ranks "
                              "where its tail clusters start, e.g. [2000, 6000]")
        if any(b <= a for a, b in zip(cutoffs[:-1], cutoffs[1:], strict=True)):
            raise ConfigError(f"{key}.cutoffs", f"{cutoffs} is not increasing; list the ranks "
                              "in increasing order, each once")
        if exp["softmax"] != "full" and config["export"]:
            raise ConfigError("export", f"{name} has softmax {exp['softmax']}, which ONNX and "
                              "PyTorch's RNNModel export cannot write yet (a full decoder "
                              "only); drop export or that experiment from run")
        check_mogrifier(config, exp, key, head)
        too_large = oversized(exp, config["modes"])
        if too_large:
            setting, problem = too_large
            varied = {"sweeps": ("grid", config["sweeps"].get(head, {}).get("grid", {})),
                      "tunes": ("space", config["tunes"].get(head, {}).get("space", {}))}
            within, keys = varied.get(key.split(".")[0], ("", {}))
            raise ConfigError(f"{key}.{within}.{setting}" if setting in keys else
                              f"{key}.{setting}", problem)
        if exp["corpus"] not in config["corpora"]:
            raise ConfigError(f"{key}.corpus", f"{exp['corpus']!r} is not a corpus (known: "
                              f"{', '.join(sorted(config['corpora']))}); add it under corpora")
    if config["device"] == "gpu" and config["gpus"] < 1:
        raise ConfigError("gpus", "device gpu needs gpus >= 1")
