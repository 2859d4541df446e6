"""Where the workflow's files are and what each job reads: the folders of logs and benchmarks, the
runs' paths and the final targets, and the input functions, among them those that wait for a
tune's choice (its last rung, a checkpoint) and those of the runs that share another's training.
"""

import re

from rnnlm.io import read_json
from rnnlm.plan.runs import EXPORTS, array_width


def logs(path):
    return f"results/logs/{path}"


def benchmarks(path):
    return f"results/benchmarks/{path}"


def run_paths(pattern, runs=None):
    """``pattern`` (with {experiment}, {mode}, {seed}) for every run of the plan, or ``runs``."""
    return [
        pattern.format(experiment=r.experiment, mode=r.mode, seed=r.seed)
        for r in (PLAN.runs if runs is None else runs)
    ]


def corpus_paths(pattern):
    """``pattern`` (with {corpus}) for every corpus an experiment that runs reads."""
    return expand(pattern, corpus=sorted(set(PLAN.corpus_names().values())))


def final_outputs():
    return [
        *rules.table.output,
        *rules.compare.output,
        *rules.provenance.output,
        *rules.plots.output,
        *(rules.compare_predictions.output if PLAN.predicted() else []),
        *expand(list(rules.sweep.output), sweep=list(PLAN.sweeps)),
        *expand(list(rules.tune_table.output), tune=list(PLAN.tunes)),
        *exported(),
        *expand(rules.dynamic_plot.output[0], experiment=dynamic_plotted()),
    ]


def dynamic_plotted():
    """The experiments (not sweep points) with dynamic evaluation: each has its stream plot."""
    return list(dict.fromkeys(r.experiment for r in PLAN.dynamic() if r.sweep is None))


def dynamic_logps(wildcards):
    """The dynamic_eval.npz files of the experiment's runs."""
    runs = [r for r in PLAN.dynamic() if r.experiment == wildcards.experiment]
    return run_paths(rules.dynamic_eval.output.logps, runs)


def exported():
    """The model files of the `export` formats the config asks for, of every run."""
    pattern = rules.export.output[0]
    return [
        p
        for f in config["export"]
        for p in run_paths(pattern.replace("model.{suffix}", EXPORTS[f]))
    ]


# ---- a run's settings, and a tune's choice ---------------------------------------------------
def experiment(wildcards):
    """The settings of the run the wildcards name; a tune's final runs take their mode's
    choice, known once the tune's last rung has run (rules that call this for them list
    `tuned_choice` as an input)."""
    name = wildcards.experiment
    if name in PLAN.tunes:
        return PLAN.tuned(name, chosen_trial(PLAN.tunes[name], wildcards.mode))
    return PLAN.settings(name)


def tuned_choice(wildcards):
    """The last rung's record of the tune whose final run the wildcards name; none else."""
    tune = PLAN.tunes.get(wildcards.experiment)
    return [last_rung(tune, wildcards.mode)] if tune else []


def last_rung(tune, mode):
    """The record of a tune's last rung for ``mode``, a checkpoint's output: a rule whose
    functions read it lists it as an input."""
    return checkpoints.halving.get(
        tune=tune.name, mode=mode, rung=len(tune.rungs)
    ).output[0]


def chosen_trial(tune, mode):
    """The trial a tune's last rung chose for ``mode``."""
    return read_json(last_rung(tune, mode))["promoted"][0]


# ---- input functions -------------------------------------------------------------------------
def sweep_runs(pattern):
    """``pattern`` for every run of the sweep named by the wildcard."""
    return lambda wildcards: run_paths(
        pattern, [r for r in PLAN.runs if r.sweep == wildcards.sweep]
    )


def vocab_file(wildcards):
    return rules.vocab.output.vocab.format(corpus=PLAN.corpus_of(wildcards.experiment))


def array(split, width=None):
    """The experiment's array of ``split``, as wide as rnnlm.plan says, or ``width`` columns."""

    def path(wildcards):
        exp = experiment(wildcards)
        return rules.batchify.output.array.format(
            corpus=exp["corpus"],
            split=split,
            batch_size=width or array_width(exp, split),
        )

    return path


# ---- runs that share another's training (rnnlm.share) ----------------------------------------
SHARED = {
    run.folder.removeprefix("results/"): trainer
    for run, trainer in PLAN.shared().items()
}  # the folder of a run that shares its training -> the Run that trains it
TUNED_SHARES = {
    run.folder.removeprefix("results/"): run for run in PLAN.tuned_shares()
}  # a tune's final run at the trials' seed: its trainer is known once the tune has chosen


def shared_folders():
    """The `share` rule's {shared}: exactly the folders of the runs that share their training
    (a pattern that matches nothing when none does)."""
    return "|".join(map(re.escape, [*SHARED, *TUNED_SHARES])) or "(?!)"


def trainer(wildcards):
    """The Run that trains the shared run's settings: the plan's, or for a tune's final run
    the chosen trial's last rung."""
    run = TUNED_SHARES.get(wildcards.shared)
    if run is None:
        return SHARED[wildcards.shared]
    return PLAN.tuned_trainer(run, chosen_trial(PLAN.tunes[run.experiment], run.mode))


def trained_as(wildcards):
    """The training outputs of the run that trains the shared run's settings, and for a tune's
    final run the choice that names it."""
    run, tuned = trainer(wildcards), TUNED_SHARES.get(wildcards.shared)
    found = {
        name: path.format(experiment=run.experiment, mode=run.mode, seed=run.seed)
        for name, path in rules.train.output.items()
    }
    if tuned:
        found["choice"] = last_rung(PLAN.tunes[tuned.experiment], tuned.mode)
    return found


def trained_dir(wildcards):
    """The folder that trained: a recorded param, so another source reruns the share."""
    return trainer(wildcards).folder


# ---- tunes (rnnlm.tune) ----------------------------------------------------------------------
def tune_of(wildcards):
    return PLAN.tunes[wildcards.experiment.split("/")[0]]


def previous_state(wildcards):
    """A continued trial's input: the state its previous rung kept; none on the first rung."""
    tune = tune_of(wildcards)
    trial, rung = tune.locate(wildcards.experiment)
    return [f"{tune.folder(trial, rung - 1, wildcards.mode)}/state"] if rung else []


def rung_trials(wildcards):
    """summary.json of the trials in a rung: all on the first, then those the previous rung
    promoted (known once it has run: hence a checkpoint)."""
    tune, rung = PLAN.tunes[wildcards.tune], int(wildcards.rung) - 1
    entering = range(1, len(tune.points) + 1)
    if rung:
        previous = checkpoints.halving.get(
            tune=tune.name, mode=wildcards.mode, rung=rung
        )
        entering = read_json(previous.output[0])["promoted"]
    return [f"{tune.folder(i, rung, wildcards.mode)}/summary.json" for i in entering]


def rung_files(wildcards):
    tune = PLAN.tunes[wildcards.tune]
    return [
        rules.halving.output[0].format(tune=tune.name, mode=mode, rung=rung)
        for mode in PLAN.config["modes"]
        for rung in range(1, len(tune.rungs) + 1)
    ]
