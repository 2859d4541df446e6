"""Everything Python in the workflow: validation, cross-key checks, wildcard constraints, paths,
parameter builders and input functions. The rule files hold nothing but rules."""

import ast
import hashlib
import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

MODES = ("rnn_relu", "rnn_tanh", "lstm", "gru")
SPLITS = ("train", "valid", "test")
# An experiment is a folder under results/, beside these reserved ones.
EXPERIMENT_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
RESERVED = ("benchmarks", "data", "logs", "plots")


def config_error(key, problem):
    return WorkflowError(
        f"config key {key}: {problem} (see workflow/schemas/config.schema.yaml)"
    )


def check_config(config):
    """Rules across keys that the schema cannot say; each failure names the key."""
    for name in config["run"]:
        if name not in config["experiments"]:
            known = ", ".join(sorted(config["experiments"]))
            raise config_error(
                "run",
                f"{name!r} is not in experiments (known: {known}) nor a preset "
                f"(workflow/presets/: {', '.join(sorted(PRESETS))})",
            )
    for name, exp in config["experiments"].items():
        if name in RESERVED:
            raise config_error(
                f"experiments.{name}", f"the name is reserved for results/{name}/"
            )
        if exp["tied"] and exp["emsize"] != exp["nhid"]:
            raise config_error(
                f"experiments.{name}.tied",
                f"tied weights need emsize == nhid (got {exp['emsize']} and {exp['nhid']}); "
                "set tied: false or make them equal",
            )
    if config["device"] == "gpu" and config["gpus"] < 1:
        raise config_error("gpus", "device gpu needs gpus >= 1")


def coerce_strings(value, schema):
    """Read a string as YAML where the schema wants no string: `--config` parses nested values
    as strings (`experiments={tutorial: {epochs: 3}}` gives '3'); files are already typed.
    """
    if isinstance(value, dict):
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, extra)
            if isinstance(sub, dict):
                value[key] = coerce_strings(item, sub)
    elif isinstance(value, str):
        types = schema.get("type", "string")
        if "string" not in ([types] if isinstance(types, str) else types):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            return value if isinstance(parsed, (str, dict, list)) else parsed
    return value


def validated(doc, error):
    """`doc` checked against the schema, its defaults filled; a failure raises
    `error(path, message)`, naming the key in one line instead of the whole schema dump.
    """
    try:
        validate(doc, str(SCHEMA))
    except WorkflowError as err:
        cause = err.__context__
        if not hasattr(cause, "absolute_path"):
            raise
        raise error(list(map(str, cause.absolute_path)), cause.message) from None
    return doc


def preset_error(path, key, problem):
    return WorkflowError(
        f"preset {path.relative_to(workflow.basedir)}: key {key or '(top level)'}: {problem} "
        "(keys and bounds as for experiments in workflow/schemas/config.schema.yaml)"
    )


def read_preset(path):
    """One preset file: (the experiment, validated as one with the schema's defaults filled,
    its `published` numbers)."""
    exp = yaml.safe_load(path.read_text())
    if not isinstance(exp, dict):
        raise preset_error(path, "", "expected a mapping of experiment keys")
    published = exp.pop("published", None) or {}
    if not isinstance(published, dict):
        raise preset_error(
            path, "published", "expected a mapping of valid, test, source"
        )
    for key, value in published.items():
        if key not in ("valid", "test", "source"):
            raise preset_error(path, f"published.{key}", "use valid, test, source")
        number = type(value) in (int, float) and value > 0
        if key != "source" and value is not None and not number:
            raise preset_error(path, f"published.{key}", f"{value!r} is not a ppl > 0")
    doc = {"experiments": {path.stem: exp}}
    validated(doc, lambda at, msg: preset_error(path, ".".join(at[2:]), msg))
    return doc["experiments"][path.stem], published


def add_presets(config, own_keys):
    """Put the presets named in `run` into `experiments`; an experiment of the same name in the
    config overrides the preset's keys with those it sets (`own_keys`, read before defaults).
    """
    for name in config["run"]:
        if name in PRESETS:
            own = config["experiments"].get(name, {})
            keys = own_keys.get(name, ())
            config["experiments"][name] = {
                **PRESETS[name][0],
                **{key: own[key] for key in keys},
            }


def published_test_ppl():
    """Experiment -> published test perplexity, for the presets in `run` that have one."""
    tests = {
        name: PRESETS[name][1].get("test") for name in config["run"] if name in PRESETS
    }
    return {name: ppl for name, ppl in tests.items() if ppl is not None}


SCHEMA = Path(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
PRESETS = {
    path.stem: read_preset(path)
    for path in sorted(Path(workflow.basedir, "workflow", "presets").glob("*.yaml"))
}
coerce_strings(config, yaml.safe_load(SCHEMA.read_text()))
OWN_KEYS = {  # before validate() fills in the defaults
    name: set(exp)
    for name, exp in (config.get("experiments") or {}).items()
    if isinstance(exp, dict)
}
validated(config, lambda at, msg: config_error(".".join(at) or "(top level)", msg))
add_presets(config, OWN_KEYS)
check_config(config)


wildcard_constraints:
    experiment=EXPERIMENT_NAME,
    mode="|".join(MODES),
    split="|".join(SPLITS),
    batch_size=r"[1-9][0-9]*",


# Rules call `rnnlm`; a snakemake run from the uv environment finds it there unactivated.
_bin = Path(sys.executable).parent
if shutil.which("rnnlm") is None and (_bin / "rnnlm").exists():
    os.environ.update(PATH=f"{_bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}")


def logs(path):
    return f"results/logs/{path}"


def benchmarks(path):
    return f"results/benchmarks/{path}"


def package_dir():
    """The rnnlm sources the rules run: the repository's src/ (an editable install), else the
    installed package."""
    src = Path(workflow.basedir) / "src" / "rnnlm"
    if src.is_dir():
        return src
    spec = importlib.util.find_spec("rnnlm")
    if spec is None or not spec.submodule_search_locations:
        raise WorkflowError(
            "package rnnlm not found: run `uv sync` in the repository first"
        )
    return Path(spec.submodule_search_locations[0])


def package_imports(path):
    """Names of the rnnlm modules that the module at `path` imports, at the top or lazily."""
    names = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            top, _, sub = module.partition(".")
            if top == "rnnlm":
                names.add(sub.partition(".")[0] or "__init__")
    return names


def code_digest(stage, package=None):
    """Digest of the package code that stage `stage` runs: its module and every rnnlm module it
    imports, directly or not (with one-way imports, modules to its left only).

    Snakemake does not see changes in an imported package; as a `code` param this digest makes
    a code change rerun the jobs that run it and everything downstream, and nothing upstream.
    """
    package = Path(package or package_dir())
    todo, seen = [stage], set()
    while todo:
        name = todo.pop()
        path = package / f"{name}.py"
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        todo.extend(package_imports(path))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(
            f"{name}\0".encode() + (package / f"{name}.py").read_bytes() + b"\0"
        )
    return digest.hexdigest()[:16]


def experiment(wildcards):
    return config["experiments"][wildcards.experiment]


def run_paths(pattern):
    """`pattern` (a rule's output with {experiment} and {mode}) for every experiment x mode."""
    return expand(pattern, experiment=config["run"], mode=config["modes"])


def final_outputs():
    return [*rules.table.output, *rules.plots.output, *rules.compare_predictions.output]


# ---- input functions -------------------------------------------------------------------------
def corpus(wildcards):
    return getattr(rules.download.output, wildcards.split)


def train_array(wildcards):
    return f"results/data/train.b{experiment(wildcards)['batch_size']}.npy"


def eval_array(split):
    """Validation and test arrays use the experiment's eval_batch_size."""
    return (
        lambda wildcards: f"results/data/{split}.b{experiment(wildcards)['eval_batch_size']}.npy"
    )


# ---- params ------------------------------------------------------------------------------------
# A param function that takes `output`, `input` or `resources` is "derived": Snakemake does not
# record it, so changing it reruns nothing. Hence the URL (where the data come from; the digests
# say what they are), folders derived from file names, and the device (how, not what).
def data_url(wildcards, output):
    return config["data"]["url"]


def output_dir(wildcards, output):
    return os.path.dirname(output[0])


def run_dir(wildcards, input):
    return os.path.dirname(input.params)


def run_dirs(wildcards, input):
    return [os.path.dirname(path) for path in input.summaries]


def device_flags(wildcards, resources):
    """The device follows what the job was given: its `gpu` resource, when it has one."""
    gpus = resources.get("gpu", 0)
    return f"--device gpu --gpus {gpus}" if gpus else "--device cpu"


# Experiment keys that are `rnnlm train` flags (batch sizes come from the arrays' widths).
TRAIN_FLAGS = (
    """emsize nhid nlayers dropout init_range rnn_init lr clip clip_per epochs bptt seed
lr_schedule decay_after decay_factor max_batches""".split()
)


SWITCHES = ("restore_best", "tied")  # booleans: --key or --no-key


def train_flags(wildcards):
    """Hyperparameter flags of `rnnlm train`, from the experiment: a recorded param, so changing
    one reruns that experiment's training and what follows."""
    exp = experiment(wildcards)
    flags = [
        f"--{key.replace('_', '-')} {shlex.quote(str(exp[key]))}"
        for key in TRAIN_FLAGS
        if exp[key] is not None
    ]
    switches = [f"--{'' if exp[key] else 'no-'}{key.replace('_', '-')}" for key in SWITCHES]
    return " ".join([*flags, *switches])


def published_args(wildcards):
    """`--published EXPERIMENT=PPL ...` for the presets in `run` with a published test
    perplexity: a recorded param, so a corrected number reruns the table."""
    pairs = [f"{name}={ppl}" for name, ppl in published_test_ppl().items()]
    return shlex.join(["--published", *pairs]) if pairs else ""


def prompt_args(wildcards):
    """The prompts as quoted shell words: a recorded param, so new prompts rerun predict."""
    return shlex.join(config["predict"]["prompts"])


def bptt(wildcards):
    return experiment(wildcards)["bptt"]


# ---- resources -------------------------------------------------------------------------------
def gpu_resources():
    """The standard `gpu` resource, declared only when config device is gpu."""
    return {"gpu": config["gpus"]} if config["device"] == "gpu" else {}


def train_runtime(wildcards, attempt):
    """Minutes for a training job: roomy for a CPU, growing with model size and epochs, and with
    each retry (a retried job resumes from its checkpoint). Clusters may override it in a
    profile's set-resources."""
    exp = experiment(wildcards)
    per_epoch = 5 if exp["max_batches"] else max(10, exp["nhid"] * exp["nlayers"] // 20)
    return (15 + exp["epochs"] * per_epoch) * attempt
