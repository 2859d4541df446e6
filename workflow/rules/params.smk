"""What each job is told besides its files: the params of its `rnnlm` command, which the plan
and the wildcards decide, and its resources.

A param function that takes `output`, `input` or `resources` is "derived": Snakemake does not
record it, so changing it reruns nothing. Hence the URL (where the data come from; the digests say
what they are), folders derived from file names, and the device (how, not what).
"""

import errno
import os
import re
import shlex

from rnnlm.data import SPLITS
from rnnlm.memory import dynamic_mb, evaluate_mb, train_mb
from rnnlm.plan.flags import (
    MS_BATCH,
    cache_flags,
    dynamic_eval_flags,
    dynamic_workers,
    train_flags,
)
from rnnlm.plan.runs import EXPORTS


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
    return train_flags(experiment(wildcards), int(wildcards.seed), wildcards.mode)


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


def dynamic_eval_grid(wildcards):
    """`rnnlm dynamic-eval` flags of the experiment's dynamic evaluation and cache: a recorded
    param, so a new grid reruns it (and never the training)."""
    return dynamic_eval_flags(experiment(wildcards))


# ---- tunes (rnnlm.tune) ----------------------------------------------------------------------
def continue_flag(wildcards, input):
    return shlex.join(["--continue-from", *input.previous]) if input.previous else ""


def trial_pairs(wildcards, input):
    """TRIAL=FOLDER of each input summary (none while the DAG waits for a rung's choice)."""
    found = [(re.search(r"/trial~([0-9]+)/", path), path) for path in input.summaries]
    return [f"{match[1]}={os.path.dirname(path)}" for match, path in found if match]


def space_keys(wildcards):
    return list(PLAN.config["tunes"][wildcards.tune]["space"])


def tuned_flag():
    """`--tuned NAME ...` of the tunes in `run`: a recorded param, the tables' notes."""
    return shlex.join(["--tuned", *PLAN.tunes]) if PLAN.tunes else ""


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


def train_memory(wildcards, input):
    """mem_mb of a training job (a tune's trial too): rnnlm.memory's estimate of its peak, from
    the run's settings, vocabulary and arrays."""
    inputs_present(input, input.train, input.valid)
    return train_mb(
        wildcards.mode,
        settings_of(wildcards, input),
        input.vocab,
        input.train,
        input.valid,
    )


def evaluate_memory(wildcards, input):
    """mem_mb of an evaluation job: rnnlm.memory's estimate, from the trained model.json."""
    inputs_present(input, input.test)
    return evaluate_mb(input.config, settings_of(wildcards, input)["bptt"], input.test)


def dynamic_memory(wildcards, input, threads):
    """mem_mb of a dynamic evaluation job, its worker processes' included: rnnlm.memory's
    estimate, from the trained model.json and the arrays."""
    inputs_present(input, input.train, input.valid, input.test)
    settings = settings_of(wildcards, input)
    grid = settings["dynamic_eval"]
    return dynamic_mb(
        input.config,
        grid["segment"],
        input.train,
        input.valid,
        input.test,
        dynamic_workers(threads, grid["lr"], grid["decay"]),
        bool(settings["cache"]),
    )


def settings_of(wildcards, input):
    """The run's settings as `experiment` gives them, a tune's final run's from the choice among
    its inputs. A resource must not ask the checkpoint (Snakemake considers checkpoints only in
    input functions, snakemake PR 2353's docs): an incomplete one there makes the resource a bare
    0 and Snakemake stops with "'int' object has no attribute 'constrain'" (snakemake issue
    3842). While Snakemake has not listed the choice yet, the base's, as train_runtime.
    """
    choice = getattr(input, "choice", [])  # a trial's rule has none
    choice = [choice] if isinstance(choice, str) else list(choice)
    if wildcards.experiment in PLAN.tunes and choice:
        trial = read_json(choice[0])["promoted"][0]
        return PLAN.tuned(wildcards.experiment, trial)
    return PLAN.settings(wildcards.experiment)


def inputs_present(input, *arrays):
    """FileNotFoundError naming the first input not made yet: Snakemake then shows the resource
    as <TBD> and evaluates it again when it schedules the job. Until Snakemake has read a tune's
    choice (a checkpoint), the ``arrays`` of the tune's final runs are listed as the
    checkpoint's file instead: not made yet either."""
    for path in input:
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    for path in arrays:
        if not path.endswith(".npy"):
            raise FileNotFoundError(
                errno.ENOENT, "the array waits for a tune's choice", path
            )
