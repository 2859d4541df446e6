"""The runs a configuration asks for: experiments (plain, presets and the points of sweeps), each
trained in every mode with every seed, on its corpus.

``make_plan(config, workflow)`` is the one function the Snakemake workflow calls: everything it
needs to know (which runs, which corpora, which arrays, which flags) comes from the ``Plan``.

    results/{experiment}/{mode}/seed{seed}/       one run, however many seeds
    results/{sweep}/{key}~{value}/.../{mode}/...  a sweep's point (snakemake.utils.Paramspace)
    results/{tune}/trial~{i}/epochs~{e}/{mode}/...  a tune's trial i, trained to e epochs
    results/{tune}/{mode}/seed{seed}/             a tune's final runs, each mode at its choice
"""

import dataclasses
import itertools
import json
import re
import shlex
from pathlib import Path

from rnnlm.config import RESERVED, ConfigError, resolve, validated
from rnnlm.io import RnnlmError

MODES = ("rnn_relu", "rnn_tanh", "lstm", "gru")
# `export` formats -> the file each writes in a run folder (rnnlm.export; model.pt reads model.json)
EXPORTS = {"onnx": "model.onnx", "torch": "model.pt"}
# Experiment keys that are `rnnlm train` flags, in this order (batch sizes are the arrays' widths)
TRAIN_FLAGS = ("emsize", "nhid", "nlayers", "dropout", "init_range", "rnn_init", "lr", "clip",
               "clip_per", "epochs", "bptt", "seed", "lr_schedule", "decay_after", "decay_factor",
               "max_batches", "dropout_e", "dropout_i", "dropout_h", "dropout_o", "weight_dropout",
               "alpha", "beta", "wd", "optimizer", "nonmono", "finetune_epochs")
SWITCHES = ("restore_best", "tied", "variable_bptt")  # booleans: --key or --no-key
NOT_SWEPT = ("seed", "seeds", "corpus")  # a sweep's points share its base's seeds and corpus
# The cache's default grids (the schema's defaults of experiments.*.cache): around awd-lstm-lm's
# README values (PTB theta 1.0, lambda 0.1; WikiText-2 theta 0.662, lambda 0.1279), both
# chosen on validation as Grave et al. 2016 choose theirs; lambda 0 (no cache) is always tried.
CACHE_THETAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0)
CACHE_LAMBDAS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4)


@dataclasses.dataclass(frozen=True)
class Run:
    experiment: str
    mode: str
    seed: int

    @property
    def folder(self):
        return f"results/{self.experiment}/{self.mode}/seed{self.seed}"

    @property
    def sweep(self):
        """The name of the sweep whose point the experiment is; None for a plain experiment."""
        return self.experiment.split("/")[0] if "/" in self.experiment else None

    @classmethod
    def of_folder(cls, folder):
        """The run a folder `.../<experiment>/<mode>/seed<N>` holds; an experiment is a name and,
        for a sweep's point, the `key~value` folders after it."""
        *head, mode, seed = Path(folder).parts
        match = re.fullmatch(r"seed([0-9]+)", seed)
        if not match or mode not in MODES or not head:
            raise RnnlmError(f"{folder}: not a run folder (<experiment>/<mode>/seed<N>, e.g. "
                             "results/tutorial/lstm/seed1)")
        start = len(head) - 1
        while start > 0 and "~" in head[start]:  # a sweep's point, then the sweep's name
            start -= 1
        if "~" in head[start]:
            raise RnnlmError(f"{folder}: a sweep's point without the sweep's folder above it")
        return cls("/".join(head[start:]), mode, int(match.group(1)))


@dataclasses.dataclass(frozen=True)
class Tune:
    """A tune's trials: their points, the rungs' epochs and sizes (rnnlm.tune)."""

    name: str
    points: tuple  # trial i's point is points[i - 1]
    rungs: tuple  # epochs by the end of each rung
    sizes: tuple  # trials per mode in each rung
    eta: int
    seed: int  # the trials' training seed: the base's

    def trial(self, i, rung):
        """The experiment name of trial ``i`` trained to rung ``rung``'s epochs."""
        return f"{self.name}/trial~{i}/epochs~{self.rungs[rung]}"

    def folder(self, i, rung, mode):
        return f"results/{self.trial(i, rung)}/{mode}/seed{self.seed}"

    def locate(self, experiment):
        """(trial, rung) of a trial's experiment name."""
        match = re.fullmatch(rf"{re.escape(self.name)}/trial~([0-9]+)/epochs~([0-9]+)",
                             experiment)
        return int(match[1]), self.rungs.index(int(match[2]))


@dataclasses.dataclass
class Plan:
    config: dict  # resolved: defaults filled, presets and corpora merged
    experiments: dict  # name -> settings, for every experiment a run trains (sweep points too)
    runs: list  # Run, in the order of `run`, then modes, then seeds
    corpora: dict  # name -> definition, for the corpora the runs train on
    sweeps: dict  # sweep name -> its points' experiment names, for the sweeps in `run`
    published: dict  # experiment -> published test perplexity, for presets that have one
    tunes: dict = dataclasses.field(default_factory=dict)  # name -> Tune, for tunes in `run`
    trials: dict = dataclasses.field(default_factory=dict)  # a trial's experiment -> settings

    def tuned(self, tune, trial):
        """The settings of a tune's final runs for the mode whose choice is ``trial``: the
        trial's at the last rung, with the tune's seeds."""
        tune = self.tunes[tune]
        exp = self.trials[tune.trial(trial, len(tune.rungs) - 1)]
        return {**exp, "seeds": self.experiments[tune.name]["seeds"]}

    def plain_experiments(self):
        """The experiments that are not sweep points: each has its learning curves."""
        return [name for name in self.experiments if "/" not in name]

    def settings(self, experiment):
        """An experiment's settings, a tune's trials' too (a tune's final runs': ``tuned``)."""
        return self.trials.get(experiment) or self.experiments[experiment]

    def corpus_names(self):
        """Experiment -> corpus, for every experiment that runs."""
        return {name: exp["corpus"] for name, exp in self.experiments.items()}

    def seeds(self, experiment):
        return self.experiments[experiment]["seeds"]

    def corpus_of(self, experiment):
        return self.settings(experiment)["corpus"]

    def prompts(self, corpus):
        """The prompts predictions are asked for on ``corpus``: predict.prompts, else the
        corpus's own."""
        return self.config["predict"]["prompts"] or self.corpora[corpus]["prompts"]

    def predicted(self):
        """The runs whose next-word predictions the report shows: each mode of each experiment
        (not sweep points), with the experiment's first seed."""
        return [r for r in self.runs if r.sweep is None and r.seed == self.seeds(r.experiment)[0]]

    def cached(self):
        """The runs whose experiment asks for the continuous cache."""
        return [r for r in self.runs if self.experiments[r.experiment]["cache"]]

    def shared(self):
        """{duplicate Run: the Run that trains it}: runs whose `rnnlm train` would see the same
        settings and data (``training_key``) are trained once, by the first in plan order.
        A tune's final runs are left out: their point is chosen only once the tune has run
        (those at the trials' seed share the chosen trial's: ``tuned_shares``)."""
        first, shared = {}, {}
        for run in (r for r in self.runs if r.experiment not in self.tunes):
            trainer = first.setdefault(self.training_key(run), run)
            if trainer != run:
                shared[run] = trainer
        return shared

    def tuned_shares(self):
        """A tune's final runs at its trials' seed: each trains what its mode's chosen trial
        trained by the last rung (the same settings and seed; a continued trial ends with the
        weights of one run in one go), so shares that run, ``tuned_trainer``, once chosen."""
        return [r for r in self.runs
                if r.experiment in self.tunes and r.seed == self.tunes[r.experiment].seed]

    def tuned_trainer(self, run, trial):
        """The last-rung run of ``trial`` (its mode's choice) that tune final ``run`` shares."""
        tune = self.tunes[run.experiment]
        return Run(tune.trial(trial, len(tune.rungs) - 1), run.mode, run.seed)

    def training_key(self, run):
        """What a run's training depends on, as `rnnlm train` reads it: its mode, its corpus's
        definition, the widths of its train and valid arrays and its `train_flags`, every
        flag the command gets (numbers by value, as it parses them: a grid's lr 1 is the
        schema's 1.0; ints stay exact). Equal keys give equal settings digests in summary.json
        and the same data digests."""
        exp = self.experiments[run.experiment]
        by_value = {key: int(value) if isinstance(value, float) and value.is_integer() else value
                    for key, value in exp.items()}
        corpus = json.dumps(self.corpora[exp["corpus"]], sort_keys=True)
        return (run.mode, corpus, exp["batch_size"], exp["eval_batch_size"],
                train_flags(by_value, run.seed))

    def batch_size(self, experiment, split):
        """The width of an experiment's ``split`` array: batch_size to train on, eval_batch_size
        to validate and test on."""
        return array_width(self.settings(experiment), split)


def array_width(exp, split):
    return exp["batch_size"] if split == "train" else exp["eval_batch_size"]


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
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    names = Paramspace(pd.DataFrame(points)).instance_patterns
    experiments = {}
    for point, path in zip(points, names, strict=True):
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
    if base["finetune_epochs"] or "finetune_epochs" in tune["space"]:
        raise ConfigError(f"{key}.base", "fine-tuning ends a run: a trial cannot continue past "
                          "it to the next rung; tune a base without finetune_epochs")
    seed = (base["seeds"] or [base["seed"]])[0]
    plan = Tune(name, (), tuple(rungs), tuple(rung_sizes(tune["trials"], rungs, tune["eta"])),
                tune["eta"], seed)
    points, trials = [], {}
    for i in range(1, tune["trials"] + 1):
        point = draw(tune["space"], tune["seed"], i)
        points.append(point)
        for rung, epochs in enumerate(rungs):
            doc = {"experiments": {name: {**base, **point, "epochs": epochs, "seeds": [seed]}}}
            validated(doc, workflow.validator, lambda at, msg, i=i, point=point: ConfigError(
                f"{key}.space.{at.rpartition('.')[2]}", f"{msg} (at trial {i}'s point {point})"))
            trials[plan.trial(i, rung)] = doc["experiments"][name]
    final = {**base, "epochs": rungs[-1], "seeds": tune["seeds"]}
    return dataclasses.replace(plan, points=tuple(points)), final, trials


def check(config, experiments):
    """The rules across keys that the schema cannot say, for the experiments that run."""
    for name in [*config["experiments"], *config["sweeps"], *config["tunes"]]:
        if name in RESERVED:
            raise ConfigError(f"experiments.{name}", f"the name is reserved for results/{name}/")
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
        if exp["corpus"] not in config["corpora"]:
            raise ConfigError(f"{key}.corpus", f"{exp['corpus']!r} is not a corpus (known: "
                              f"{', '.join(sorted(config['corpora']))}); add it under corpora")
    if config["device"] == "gpu" and config["gpus"] < 1:
        raise ConfigError("gpus", "device gpu needs gpus >= 1")


def train_flags(exp, seed):
    """`rnnlm train` flags of experiment settings ``exp`` for one seed."""
    values = {**exp, "seed": seed}
    flags = [f"--{key.replace('_', '-')} {shlex.quote(str(values[key]))}" for key in TRAIN_FLAGS
             if values[key] is not None]
    switches = [f"--{'' if exp[key] else 'no-'}{key.replace('_', '-')}" for key in SWITCHES]
    if exp["softmax"] != "full":  # the full softmax's flags as before there was another
        switches += [f"--softmax {exp['softmax']}", "--cutoffs", *map(str, exp["cutoffs"]),
                     f"--div-value {exp['div_value']}"]
    return " ".join([*flags, *switches])


def cache_flags(exp):
    """`rnnlm cache` flags of an experiment's `cache` settings."""
    grid = exp["cache"]
    return " ".join([f"--window {grid['window']}", "--thetas", *map(str, grid["thetas"]),
                     "--lambdas", *map(str, grid["lambdas"])])
