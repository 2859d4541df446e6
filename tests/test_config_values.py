"""Every key of the config schema, given values of the wrong kind, NaN, infinities, negative,
zero, enormous and non-integral numbers: the config is refused in one line naming the key
(rnnlm.config and rnnlm.plan, before any job), or it runs: every command its jobs get is one the
`rnnlm` CLI's own parsers accept, every number in it finite, every folder a valid file name.
In-process, without Snakemake: the commands are built by the param functions the rules call
(workflow/rules/params.smk and paths.smk are plain Python, run here on the plan), in the rules'
shell lines, and parsed, never run."""

import copy
import math
import re
import shlex
from types import SimpleNamespace

import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm import cli
from rnnlm.config import NAME, NAME_MAX, Workflow
from rnnlm.data import SPLITS
from rnnlm.io import RnnlmError
from rnnlm.plan.expand import NOT_SWEPT, make_plan
from rnnlm.plan.runs import Run

WORKFLOW = Workflow(REPO / "workflow")
SCHEMA = WORKFLOW.schema
EXPERIMENT = SCHEMA["properties"]["experiments"]["additionalProperties"]["properties"]
TINY = {"emsize": 8, "nhid": 8, "nlayers": 1, "epochs": 2, "batch_size": 4, "eval_batch_size": 2}
BASE = {  # a plain experiment, a sweep and a tune, each on a corpus of its own kind
    "modes": ["lstm", "gru"], "run": ["x", "s", "t"], "threads": 1,
    "experiments": {"x": {**TINY, "corpus": "mine", "cache": {"window": 5}}, "base": TINY},
    "corpora": {"ptb": {"url": "/mirror", "files": {s: f"{s}.txt" for s in SPLITS}},
                "mine": {"url": "/text", "file": "all.txt"}},
    "sweeps": {"s": {"base": "base", "grid": {"lr": [0.5, 1.0]}}},
    "tunes": {"t": {"base": "base", "trials": 3, "rungs": [1, 2], "seeds": [1, 2],
                    "space": {"dropout": {"uniform": [0.1, 0.5]}}}},
    "export": ["onnx"], "predict": {"prompts": ["w1 w2"]},
}
# What a bad value can be: one of each kind, tried on every key; then numbers from all over
ODD = [None, True, "abc", "", "1.0e400", [], {"a": 1}, math.nan, math.inf, -math.inf, 0, -1,
       -0.5, 0.5, 2.5, 2.0, 2 ** 63, 1e300, 10 ** 400, [math.nan], [-1], [2.5], [2.0]]
SCALARS = st.one_of(st.sampled_from(ODD[:-4]), st.integers(-2 ** 70, 2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-3, 8).map(float))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, min_size=1, max_size=3))
QUICK = settings(max_examples=6, deadline=None, derandomize=True)


def leaf_keys(schema, prefix):
    """Dotted key -> schema of every key under ``prefix``, objects and their keys alike."""
    found = {}
    for name, sub in schema.get("properties", {}).items():
        branches = [SCHEMA["$defs"][b["$ref"].rpartition("/")[2]] if "$ref" in b else b
                    for b in sub.get("anyOf", [])]
        sub = next((b for b in branches if b.get("type") == "object"), sub)
        found[f"{prefix}{name}"] = sub
        found.update(leaf_keys(sub, f"{prefix}{name}."))
    return found


CORPUS = SCHEMA["$defs"]["corpus"]
TUNE = SCHEMA["properties"]["tunes"]["additionalProperties"]
SWEEP = SCHEMA["properties"]["sweeps"]["additionalProperties"]
KEYS = sorted({
    *(k for k in SCHEMA["properties"]),
    *leaf_keys(SCHEMA["properties"]["predict"], "predict."),
    *leaf_keys(SCHEMA["properties"]["experiments"]["additionalProperties"], "experiments.x."),
    *(f"corpora.{'ptb' if k.startswith('files') else 'mine'}.{k}" for k in leaf_keys(CORPUS, "")),
    *leaf_keys(SWEEP, "sweeps.s."), *leaf_keys(TUNE, "tunes.t."),
})
SWEPT = [key for key in EXPERIMENT if key not in NOT_SWEPT]


def with_value(path, value):
    config = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return config


def refused_or_runs(config, key):
    """The config's ConfigError names ``key`` in one line, or every job's command parses."""
    try:
        plan = make_plan(config, WORKFLOW)
    except RnnlmError as err:
        line = str(err)
        parent, _, leaf = key.rpartition(".")
        assert "\n" not in line and line.endswith("(see workflow/schemas/config.schema.yaml)")
        assert line.startswith(f"config key {key}") or (
            line.startswith(f"config key {parent}:") and leaf in line), line
        return "refused"
    for argv in commands(plan):
        try:
            args = PARSER.parse_args(argv)
        except SystemExit:
            pytest.fail(f"rnnlm refuses an accepted config's command: rnnlm {shlex.join(argv)}")
        numbers = [v for value in vars(args).values()
                   for v in (value if isinstance(value, list | tuple) else [value])
                   if type(v) in (int, float)]
        assert all(math.isfinite(v) for v in numbers), argv
    folders = [f"{run.experiment}/{run.mode}/seed{run.seed}" for run in plan.runs] + [
        f"{name}/{mode}/seed1" for name in plan.trials for mode in plan.config["modes"]]
    assert all(len(part.encode()) <= NAME_MAX for f in folders for part in f.split("/")), folders
    return "runs"


PARSER = cli.build_parser()
RULE_CODE = [compile((REPO / "workflow/rules" / f).read_text(), f, "exec")
             for f in ("paths.smk", "params.smk")]


def param_functions(plan):
    """The rules' param functions on ``plan``; a tune's choice, which only its run can make,
    is its first trial."""
    space = {"PLAN": plan, "config": plan.config}
    for code in RULE_CODE:
        exec(code, space)  # noqa: S102 - the workflow's own files, as Snakemake runs them
    space["chosen_trial"] = lambda tune, mode: 1
    return SimpleNamespace(**space)


def commands(plan):
    """The argv of every job of ``plan`` whose command a config value reaches, as its rule's
    shell line writes it (the paths of its files are placeholders)."""
    rule = param_functions(plan)
    threads = str(plan.config["threads"])
    split = shlex.split
    for corpus in plan.config["corpora"]:
        wc = SimpleNamespace(corpus=corpus)
        yield ["download", "--corpus", corpus, "--url", rule.corpus_url(wc, None),
               *split(rule.corpus_source(wc)), "--out-dir", "o"]
        yield ["vocab", "--train", "a", "--valid", "b", "--test", "c", "--vocab", "v",
               "--stats", "s", *split(rule.vocab_rules(wc))]
    runs = [*plan.runs, *(Run(name, mode, tune.seed) for tune in plan.tunes.values()
                          for name in plan.trials if name.startswith(f"{tune.name}/")
                          for mode in plan.config["modes"])]
    for run in runs:  # wildcards are strings, as Snakemake reads them from the paths
        wc = SimpleNamespace(experiment=run.experiment, mode=run.mode, seed=str(run.seed))
        exp = rule.experiment(wc)
        device = split(rule.device_flags(wc, rule.gpu_resources()))
        for split_name in ("train", "valid"):
            yield ["batchify", "--corpus", "c", "--vocab", "v", "--batch-size",
                   str(rule.array_width(exp, split_name)), "--out", "a.npy",
                   *split(rule.batchify_flags(SimpleNamespace(corpus=exp["corpus"])))]
        yield ["train", "--mode", wc.mode, "--vocab", "v", "--train", "a", "--valid", "b",
               "--out-dir", "o", *split(rule.hyperparameters(wc)), *device, "--threads", threads]
        yield ["evaluate", "--run-dir", "o", "--data", "a", "--bptt", str(rule.bptt(wc)),
               "--split", "test", "--out", "t.json", *device, "--threads", threads]
        yield ["predict", "--run-dir", "o", "--vocab", "v", "--prompts",
               *split(rule.prompt_args(wc)), "--top-k", str(plan.config["predict"]["top_k"]),
               "--corpus", exp["corpus"], "--threads", "1", "--out", "p.json"]
        if exp["cache"]:
            yield ["cache", "--run-dir", "o", "--valid", "a", "--test", "b",
                   *split(rule.cache_grid(wc)), "--out", "c.json", "--threads", threads]
        for fmt in plan.config["export"]:
            yield ["export", "--run-dir", "o", "--format", fmt, "--threads", threads, "--out", "m"]
    for tune in plan.tunes.values():
        yield ["halve", "--tune", tune.name, "--mode", "lstm", "--rung", "1", "--rungs",
               *map(str, tune.rungs), "--eta", str(tune.eta), "--keys",
               *rule.space_keys(SimpleNamespace(tune=tune.name)), "--trials", "1=o", "--out", "r"]


def test_the_base_config_runs_every_kind_of_job():
    assert refused_or_runs(copy.deepcopy(BASE), "") == "runs"
    kinds = {argv[0] for argv in commands(make_plan(copy.deepcopy(BASE), WORKFLOW))}
    assert kinds == {"download", "vocab", "batchify", "train", "evaluate", "predict", "cache",
                     "export", "halve"}


@pytest.mark.parametrize("key", KEYS)
def test_every_key_refuses_each_odd_value_by_name_or_runs(key):
    outcomes = [refused_or_runs(with_value(key, value), key) for value in ODD]
    assert "refused" in outcomes  # every key refuses something: a wrong kind at least


@pytest.mark.parametrize("key", KEYS)
@QUICK
@given(value=VALUES)
def test_every_key_refuses_a_bad_value_by_name_or_runs(key, value):
    refused_or_runs(with_value(key, value), key)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(key=st.sampled_from(SWEPT), value=VALUES)
def test_every_grid_value_is_refused_by_name_or_runs(key, value):
    grid = {key: value if isinstance(value, list) else [value]}
    refused_or_runs(with_value("sweeps.s.grid", grid), f"sweeps.s.grid.{key}")


@pytest.mark.parametrize("kind", ["uniform", "log_uniform", "int_uniform", "choice"])
@settings(max_examples=30, deadline=None, derandomize=True)
@given(key=st.sampled_from(SWEPT), low=SCALARS, high=SCALARS)
def test_every_space_value_is_refused_by_name_or_runs(kind, key, low, high):
    values = [low] if kind == "choice" else [low, high]
    refused_or_runs(with_value("tunes.t.space", {key: {kind: values}}), f"tunes.t.space.{key}")


NAMES = st.one_of(st.sampled_from(["nl\n", "a" * 221, "a" * 222, "a/b", ".a", "-a", "data", "é"]),
                  st.text(max_size=4), st.text(alphabet="ab.-_\n/", min_size=200, max_size=260))


@pytest.mark.parametrize("kind", ["experiments", "corpora", "sweeps", "tunes"])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(name=NAMES)
def test_every_name_is_refused_by_name_or_is_a_folder_name(kind, name):
    config = copy.deepcopy(BASE)
    if kind == "experiments":
        config["experiments"][name], config["run"] = TINY, [name]
    elif kind == "corpora":
        config["corpora"][name] = {"url": "/text", "file": "all.txt"}
        config["experiments"]["x"]["corpus"] = name
    else:
        config[kind][name] = config[kind].pop(kind[0])
        config["run"] = [name]
    if refused_or_runs(config, kind) == "runs":
        assert re.fullmatch(NAME, name) and len(name) <= 221, repr(name)


def test_an_integral_float_is_the_int_it_equals_in_flags_and_folders():
    """2.0 for an integer key plans exactly what 2 does: the same runs, folders and flags."""
    floats = with_value("experiments.x.epochs", 2.0)
    floats["experiments"]["x"]["seeds"] = [1.0, 3.0]
    floats["sweeps"]["s"]["grid"] = {"nhid": [4.0, 8]}
    floats["tunes"]["t"].update(rungs=[1.0, 2.0], space={"nhid": {"choice": [4.0, 8.0]}})
    floats["corpora"]["mine"]["vocab"] = {"min_count": 2.0}
    ints = copy.deepcopy(floats)
    ints["experiments"]["x"].update(epochs=2, seeds=[1, 3])
    ints["sweeps"]["s"]["grid"] = {"nhid": [4, 8]}
    ints["tunes"]["t"].update(rungs=[1, 2], space={"nhid": {"choice": [4, 8]}})
    ints["corpora"]["mine"]["vocab"] = {"min_count": 2}
    a, b = (make_plan(c, WORKFLOW) for c in (floats, ints))
    assert a.runs == b.runs and list(commands(a)) == list(commands(b))
    assert a.sweeps["s"] == ["s/nhid~4", "s/nhid~8"] and a.tunes["t"].rungs == (1, 2)
    assert a.tunes["t"].points == b.tunes["t"].points
    kinds = {type(point["nhid"]) for point in a.tunes["t"].points}
    assert kinds == {type(a.experiments["x"]["epochs"])} == {int}


def test_a_path_component_of_a_sweeps_value_fits_a_file_name():
    too_long = with_value("sweeps.s.grid", {"lr": [0.5], "nhid": [10 ** 260]})
    with pytest.raises(RnnlmError, match=r"^config key sweeps\.s\.grid\.nhid: the folder "
                                         r"'nhid~1000.*'\.\.\. would be 266 bytes, more than "
                                         r"a file name's 255; use a shorter value"):
        make_plan(too_long, WORKFLOW)
