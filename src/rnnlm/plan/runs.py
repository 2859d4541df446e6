"""The plan's runs and tunes, and the Plan: what the workflow asks of a config once it is
expanded (expand.make_plan) into experiments."""

import dataclasses
import json
import re
from pathlib import Path

from rnnlm.io import RnnlmError
from rnnlm.plan.flags import train_flags

MODES = ("rnn_relu", "rnn_tanh", "lstm", "gru", "mogrifier")  # rnnlm.model.MODES, without mxnet
# `export` formats -> the file each writes in a run folder (rnnlm.export; model.pt reads model.json)
EXPORTS = {"onnx": "model.onnx", "torch": "model.pt"}


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

    def dynamic(self):
        """The runs whose experiment asks for dynamic evaluation."""
        return [r for r in self.runs if self.experiments[r.experiment]["dynamic_eval"]]

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
                train_flags(by_value, run.seed, run.mode))

    def batch_size(self, experiment, split):
        """The width of an experiment's ``split`` array: batch_size to train on, eval_batch_size
        to validate and test on."""
        return array_width(self.settings(experiment), split)


def array_width(exp, split):
    return exp["batch_size"] if split == "train" else exp["eval_batch_size"]
