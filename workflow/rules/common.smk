"""The workflow's glue: the plan of runs that rnnlm.plan makes of the config, wildcard
constraints, paths, and the input, param and resource functions the rules call. The logic (what
the config means, which runs it asks for) is the package's, unit-tested without Snakemake.
"""

import functools
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

try:
    from rnnlm.config import NAME, Workflow
    from rnnlm.data import SPLITS
    from rnnlm.io import RnnlmError
    from rnnlm.plan.expand import make_plan
    from rnnlm.plan.flags import cache_flags, train_flags
    from rnnlm.plan.runs import EXPORTS, MODES, array_width
    from rnnlm.io import read_json
    from rnnlm.provenance import PACKAGE, code_digest as package_digest
except ImportError:
    raise WorkflowError(
        "package rnnlm not found: run `make setup` in the repository and use .venv/bin/snakemake"
    ) from None

try:
    PLAN = make_plan(config, Workflow(Path(workflow.basedir, "workflow")))
except RnnlmError as err:
    raise WorkflowError(str(err)) from None
config.update(
    PLAN.config
)  # the report's "Config used" shows what ran: defaults, presets
SHARED = {
    run.folder.removeprefix("results/"): trainer
    for run, trainer in PLAN.shared().items()
}  # the folder of a run that shares its training -> the Run that trains it
TUNED_SHARES = {
    run.folder.removeprefix("results/"): run for run in PLAN.tuned_shares()
}  # a tune's final run at the trials' seed: its trainer is known once the tune has chosen


wildcard_constraints:
    corpus="|".join(map(re.escape, PLAN.config["corpora"])),  # any corpus defined, used or not
    sweep=NAME,
    experiment=NAME + r"(?:/[^/~]+~[^/]+)*",  # a sweep's point: {sweep}/{key}~{value}/...
    mode="|".join(MODES),
    seed=r"[0-9]+",
    split="|".join(SPLITS),
    batch_size=r"[1-9][0-9]*",
    suffix="|".join(name.removeprefix("model.") for name in EXPORTS.values()),


# Rules call `rnnlm`; a snakemake run from the uv environment finds it there unactivated.
_bin = Path(sys.executable).parent
if shutil.which("rnnlm") is None and (_bin / "rnnlm").exists():
    os.environ.update(PATH=f"{_bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}")


@functools.cache  # several rules run the same stage's code
def code_digest(stage):
    """Digest of the code a stage runs, from the sources beside this Snakefile when it is a
    checkout (as `uv sync` installs them), else from the installed package."""
    sources = Path(workflow.basedir, "src", "rnnlm")
    return package_digest(stage, sources if sources.is_dir() else PACKAGE)


def logs(path):
    return f"results/logs/{path}"


def benchmarks(path):
    return f"results/benchmarks/{path}"


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


def run_paths(pattern, runs=None):
    """``pattern`` (with {experiment}, {mode}, {seed}) for every run of the plan, or ``runs``."""
    return [
        pattern.format(experiment=r.experiment, mode=r.mode, seed=r.seed)
        for r in (PLAN.runs if runs is None else runs)
    ]


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
    ]


def exported():
    """The model files of the `export` formats the config asks for, of every run."""
    pattern = rules.export.output[0]
    return [
        p
        for f in config["export"]
        for p in run_paths(pattern.replace("model.{suffix}", EXPORTS[f]))
    ]


# ---- input functions -------------------------------------------------------------------------
def sweep_runs(pattern):
    """``pattern`` for every run of the sweep named by the wildcard."""
    return lambda wildcards: run_paths(
        pattern, [r for r in PLAN.runs if r.sweep == wildcards.sweep]
    )


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


# ---- params ------------------------------------------------------------------------------------
# A param function that takes `output`, `input` or `resources` is "derived": Snakemake does not
# record it, so changing it reruns nothing. Hence the URL (where the data come from; the digests
# say what they are), folders derived from file names, and the device (how, not what).
def corpus_spec(wildcards):
    """The definition of a corpus of `corpora` (built in or the user's), whether or not an
    experiment trains on it: its data stages can be asked for alone."""
    return PLAN.config["corpora"][wildcards.corpus]


def corpus_url(wildcards, output):
    return corpus_spec(wildcards)["url"]


def corpus_source(wildcards):
    """`rnnlm download` flags that say which files make the corpus and how they are checked."""
    spec = corpus_spec(wildcards)
    if spec["file"]:
        words = ["--file", spec["file"], "--split"]
        words += [str(spec["split"][s]) for s in ("valid", "test")]
    else:
        words = ["--files", *(spec["files"][s] for s in SPLITS)]
    if spec["archive"]:
        words += ["--archive", spec["archive"]]
    digests = [f"{key}={value}" for key, value in spec["digests"].items()]
    return shlex.join(words + (["--digest", *digests] if digests else []))


def vocab_rules(wildcards):
    rules_ = corpus_spec(wildcards)["vocab"]
    size = ["--max-size", str(rules_["max_size"])] if rules_["max_size"] else []
    return shlex.join(
        [*size, "--min-count", str(rules_["min_count"]), *blank_lines(wildcards)]
    )


def blank_lines(wildcards):
    """The flag only where a corpus asks for eos, so skip's commands stay as they were."""
    setting = corpus_spec(wildcards)["blank_lines"]
    return ["--blank-lines", setting] if setting != "skip" else []


def batchify_flags(wildcards):
    return shlex.join(blank_lines(wildcards))


def output_dir(wildcards, output):
    return os.path.dirname(output[0])


def export_format(wildcards):
    """The `rnnlm export --format` that writes model.{suffix}."""
    return next(f for f, name in EXPORTS.items() if name == f"model.{wildcards.suffix}")


def run_dir(wildcards, input):
    return os.path.dirname(input.params)


def run_dirs(wildcards, input):
    return [os.path.dirname(path) for path in input.summaries]


def device_flags(wildcards, resources):
    """The device follows what the job was given: its `gpu` resource, when it has one."""
    gpus = resources.get("gpu", 0)
    return f"--device gpu --gpus {gpus}" if gpus else "--device cpu"


def hyperparameters(wildcards):
    """Flags of `rnnlm train` from the experiment and the seed: a recorded param, so changing
    one reruns that experiment's training and what follows."""
    return train_flags(experiment(wildcards), int(wildcards.seed))


def corpus_name(wildcards):
    return PLAN.corpus_of(wildcards.experiment)


def prompt_args(wildcards):
    """The corpus's prompts as quoted shell words: a recorded param, so new prompts rerun
    predict."""
    return shlex.join(PLAN.prompts(corpus_name(wildcards)))


def experiment_pairs(flag, values):
    """`FLAG EXPERIMENT=VALUE ...` for the experiments in ``values``: a recorded param."""
    pairs = [f"{name}={value}" for name, value in values.items()]
    return shlex.join([flag, *pairs]) if pairs else ""


def bptt(wildcards):
    return experiment(wildcards)["bptt"]


def cache_grid(wildcards):
    """`rnnlm cache` flags of the experiment's cache: a recorded param, so a new grid or window
    reruns the cache (and never the training)."""
    return cache_flags(experiment(wildcards))


# ---- resources -------------------------------------------------------------------------------
def gpu_resources():
    """The standard `gpu` resource, declared only when config device is gpu."""
    return {"gpu": config["gpus"]} if config["device"] == "gpu" else {}


def train_runtime(wildcards, attempt):
    """Minutes for a training job: roomy for a CPU, growing with model size and epochs, and with
    each retry (a retried job resumes from its checkpoint). Clusters may override it in a
    profile's set-resources. A tune's final run is sized by its base: resources cannot wait
    for the tune's choice."""
    exp = PLAN.settings(wildcards.experiment)
    per_epoch = 5 if exp["max_batches"] else max(10, exp["nhid"] * exp["nlayers"] // 20)
    return (15 + exp["epochs"] * per_epoch) * attempt


# ---- tunes (rnnlm.tune) ----------------------------------------------------------------------
def tune_of(wildcards):
    return PLAN.tunes[wildcards.experiment.split("/")[0]]


def previous_state(wildcards):
    """A continued trial's input: the state its previous rung kept; none on the first rung."""
    tune = tune_of(wildcards)
    trial, rung = tune.locate(wildcards.experiment)
    return [f"{tune.folder(trial, rung - 1, wildcards.mode)}/state"] if rung else []


def continue_flag(wildcards, input):
    return shlex.join(["--continue-from", *input.previous]) if input.previous else ""


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


def trial_pairs(wildcards, input):
    """TRIAL=FOLDER of each input summary (none while the DAG waits for a rung's choice)."""
    found = [(re.search(r"/trial~([0-9]+)/", path), path) for path in input.summaries]
    return [f"{match[1]}={os.path.dirname(path)}" for match, path in found if match]


def space_keys(wildcards):
    return list(PLAN.config["tunes"][wildcards.tune]["space"])


def tuned_flag():
    """`--tuned NAME ...` of the tunes in `run`: a recorded param, the tables' notes."""
    return shlex.join(["--tuned", *PLAN.tunes]) if PLAN.tunes else ""


def rung_files(wildcards):
    tune = PLAN.tunes[wildcards.tune]
    return [
        rules.halving.output[0].format(tune=tune.name, mode=mode, rung=rung)
        for mode in PLAN.config["modes"]
        for rung in range(1, len(tune.rungs) + 1)
    ]
