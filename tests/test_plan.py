"""The config into runs (rnnlm.config, rnnlm.plan), without Snakemake: seeds, presets, sweeps,
corpora, and one clear ConfigError per bad input naming the key."""

import copy
import shlex

import pytest
import yaml
from conftest import REPO

from rnnlm.config import ConfigError, Workflow, typed
from rnnlm.io import RnnlmError
from rnnlm.plan.expand import make_plan
from rnnlm.plan.flags import (
    CACHE_LAMBDAS,
    CACHE_THETAS,
    DYNAMIC_DECAYS,
    DYNAMIC_LRS,
    MS_WINDOWS,
    cache_flags,
    dynamic_eval_flags,
    train_flags,
)
from rnnlm.plan.runs import MODES, Run

DEFAULT_MODES = MODES[:4]  # the schema's default modes: the mogrifier is asked for by name

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="module")
def workflow():
    return Workflow(REPO / "workflow")


def plan(workflow, **overrides):
    config = copy.deepcopy(CONFIG)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            for name, item in value.items():
                config[key][name] = {**config[key].get(name, {}), **item} if isinstance(
                    item, dict) else item
        else:
            config[key] = value
    return make_plan(config, workflow)


def error(workflow, **overrides):
    with pytest.raises(ConfigError) as caught:
        plan(workflow, **overrides)
    return str(caught.value)


def test_the_default_config_is_one_run_per_mode_on_ptb(workflow):
    p = plan(workflow)
    assert p.runs == [Run("tutorial", mode, 1) for mode in DEFAULT_MODES]
    assert p.runs[2].folder == "results/tutorial/lstm/seed1"
    assert list(p.corpora) == ["ptb"] and p.corpus_of("tutorial") == "ptb"
    assert [p.batch_size("tutorial", split) for split in ("train", "valid", "test")] == [32, 10, 10]
    assert p.published == {} and p.sweeps == {}
    assert p.prompts("ptb")[0] == "the company said"
    assert p.predicted() == p.runs


def test_seeds_give_one_run_per_mode_and_seed(workflow):
    p = plan(workflow, experiments={"tutorial": {"seeds": [3, 1, 2]}})
    assert [(r.mode, r.seed) for r in p.runs][:4] == [("rnn_relu", 3), ("rnn_relu", 1),
                                                       ("rnn_relu", 2), ("rnn_tanh", 3)]
    assert len(p.runs) == 12 and p.seeds("tutorial") == [3, 1, 2]
    assert [r.seed for r in p.predicted()] == [3] * 4  # the first seed of each mode
    assert plan(workflow, experiments={"tutorial": {"seed": 7}}).runs[0].seed == 7


def test_train_flags_carry_the_runs_seed(workflow):
    exp = plan(workflow).experiments["tutorial"]
    assert train_flags(exp, 5, "lstm") == (
        "--emsize 100 --nhid 100 --nlayers 2 --dropout 0.2 --init-range 0.1 --rnn-init "
        "init_range --lr 1.0 --clip 0.2 --clip-per token --epochs 1 --bptt 5 --seed 5 "
        "--lr-schedule plateau --decay-after 0 --decay-factor 0.25 --dropout-e 0.0 "
        "--dropout-i 0.0 --dropout-h 0.0 --dropout-o 0.0 --weight-dropout 0.0 --alpha 0.0 "
        "--beta 0.0 --wd 0.0 --optimizer sgd --nonmono 5 --finetune-epochs 0 --restore-best "
        "--tied --no-variable-bptt")


def test_the_cache_is_off_by_default_and_never_a_training_flag(workflow):
    assert plan(workflow).cached() == [] and plan(workflow).experiments["tutorial"]["cache"] is None
    p = plan(workflow, experiments={"tutorial": {"cache": {"window": 50}}, "other": {}},
             run=["tutorial", "other"], modes=["lstm"])
    assert p.cached() == [Run("tutorial", "lstm", 1)]
    grid = p.experiments["tutorial"]["cache"]  # the schema's defaults, the package's grids
    assert (grid["thetas"], grid["lambdas"]) == (list(CACHE_THETAS), list(CACHE_LAMBDAS))
    assert cache_flags(p.experiments["tutorial"]).startswith("--window 50 --thetas 0.1 0.2 ")
    assert train_flags(p.experiments["tutorial"], 1, "lstm") == train_flags(
        p.experiments["other"], 1, "lstm")


def test_dynamic_evaluation_is_off_by_default_and_never_a_training_flag(workflow):
    assert plan(workflow).dynamic() == []
    p = plan(workflow, experiments={"tutorial": {"dynamic_eval": {}, "cache": {"window": 50}},
                                    "other": {"dynamic_eval": {"lr": [1.0e-4]}}},
             run=["tutorial", "other"], modes=["lstm"])
    assert p.dynamic() == [Run("tutorial", "lstm", 1), Run("other", "lstm", 1)]
    grid = p.experiments["tutorial"]["dynamic_eval"]  # the schema's defaults, the package's
    assert (grid["lr"], grid["decay"], grid["segment"], grid["rule"], grid["ms_windows"]) == (
        list(DYNAMIC_LRS), list(DYNAMIC_DECAYS), 5, "rms", MS_WINDOWS)
    assert dynamic_eval_flags(p.experiments["tutorial"]) == (
        "--segment 5 --rule rms --ms-windows 1000 --lrs 3e-05 5e-05 0.0001 --decays 0.001 0.002 "
        "0.005 --cache-window 50 --thetas " + " ".join(map(str, CACHE_THETAS)) + " --lambdas "
        + " ".join(map(str, CACHE_LAMBDAS)))  # the cache on top: the experiment's own
    assert "--cache-window" not in dynamic_eval_flags(p.experiments["other"])
    assert train_flags(p.experiments["tutorial"], 1, "lstm") == train_flags(
        p.experiments["other"], 1, "lstm")


def test_a_cache_window_below_1_names_the_key(workflow):
    assert error(workflow, experiments={"tutorial": {"cache": {"window": 0}}}) == (
        "config key experiments.tutorial.cache.window: 0 is less than the minimum of 1 (see "
        "workflow/schemas/config.schema.yaml)")


@pytest.mark.parametrize(("seeds", "problem"), [
    ([], "experiments.tutorial.seeds: [] should be non-empty"),
    ([1, 2, 1], "experiments.tutorial.seeds: [1, 2, 1] has non-unique elements"),
    ([-1], "experiments.tutorial.seeds.0: -1 is less than the minimum of 0"),
])
def test_bad_seed_lists_name_the_key(workflow, seeds, problem):
    assert problem in error(workflow, experiments={"tutorial": {"seeds": seeds}})


SWEEP = {"lr-dropout": {"base": "tutorial", "grid": {"lr": [0.5, 1], "dropout": [0, 0.2]}}}


def test_a_sweep_is_one_experiment_per_point_named_as_paramspace_names_it(workflow):
    p = plan(workflow, run=["tutorial", "lr-dropout"], sweeps=SWEEP,
             experiments={"tutorial": {"seeds": [1, 2]}})
    points = ["lr-dropout/lr~0.5/dropout~0.0", "lr-dropout/lr~0.5/dropout~0.2",
              "lr-dropout/lr~1.0/dropout~0.0", "lr-dropout/lr~1.0/dropout~0.2"]
    assert p.sweeps == {"lr-dropout": points}
    assert len(p.runs) == (1 + 4) * len(DEFAULT_MODES) * 2
    point = p.experiments["lr-dropout/lr~1.0/dropout~0.2"]
    assert (point["lr"], point["dropout"], point["seeds"], point["emsize"]) == (1, 0.2, [1, 2], 100)
    run = next(r for r in p.runs if r.experiment == points[1])
    assert run.sweep == "lr-dropout" and p.runs[0].sweep is None
    assert run.folder == "results/lr-dropout/lr~0.5/dropout~0.2/rnn_relu/seed1"
    assert Run.of_folder(REPO / run.folder) == run
    assert all(r.sweep is None for r in p.predicted())


def test_a_sweep_over_a_preset_starts_from_the_preset(workflow):
    p = plan(workflow, run=["bptt"], modes=["lstm"],
             sweeps={"bptt": {"base": "zaremba-small", "grid": {"bptt": [10, 20]}}})
    assert [p.experiments[e]["nhid"] for e in p.sweeps["bptt"]] == [200, 200]
    assert p.published == {}  # a sweep's point is not the preset


@pytest.mark.parametrize(("sweeps", "run", "problem"), [
    ({"s": {"base": "tutorial", "grid": {"lr_rate": [1]}}}, ["s"],
     "sweeps.s.grid: 'lr_rate' is not an experiment key"),
    ({"s": {"base": "tutorial", "grid": {"dropout": [0.1, 1.5]}}}, ["s"],
     "sweeps.s.grid.dropout: 1.5 is greater than or equal to the maximum of 1"),
    ({"s": {"base": "tutorial", "grid": {"seed": [1, 2]}}}, ["s"],
     "sweeps.s.grid.seed: cannot be swept"),
    ({"tutorial": {"base": "tutorial", "grid": {"lr": [1]}}}, ["tutorial"],
     "sweeps.tutorial: the name is an experiment's or a preset's too"),
    ({"s": {"base": "nope", "grid": {"lr": [1]}}}, ["s"],
     "sweeps.s.base: 'nope' is not in experiments nor a preset"),
    ({"s": {"base": "tutorial", "grid": {"lr": []}}}, ["s"], "sweeps.s.grid.lr: [] should be"),
    ({"s": {"base": "tutorial", "grid": {"lr_schedule": ["fixed"], "optimizer": ["nt-asgd"]}}},
     ["s"], "sweeps.s.lr_schedule: fixed contradicts optimizer nt-asgd"),
])
def test_bad_sweeps_name_the_key(workflow, sweeps, run, problem):
    assert problem in error(workflow, sweeps=sweeps, run=run)


def test_run_names_experiments_presets_or_sweeps(workflow):
    message = error(workflow, run=["nope"])
    assert "config key run: 'nope' is not in experiments (known: tutorial), sweeps (none), " \
           "tunes (none) nor a preset (workflow/presets/: " in message
    assert "pytorch-small, pytorch-small-tied, pytorch-tied, tied-large" in message


def test_a_preset_is_overridden_key_by_key_and_keeps_its_published_number(workflow):
    p = plan(workflow, run=["zaremba-small"], experiments={"zaremba-small": {"epochs": 2}})
    exp = p.experiments["zaremba-small"]
    assert (exp["epochs"], exp["nhid"], exp["bptt"]) == (2, 200, 20)  # not the schema's 100, 5
    assert p.published == {"zaremba-small": 114.5}


def test_a_presets_key_set_by_the_user_gets_the_schemas_defaults_within(workflow):
    """`awd-lstm-ptb: {cache: {window: 100}}` took the user's cache without its thetas and
    lambdas: a KeyError traceback from the cache rule's params."""
    p = plan(workflow, run=["awd-lstm-ptb"],
             experiments={"awd-lstm-ptb": {"cache": {"window": 100}}})
    cache = p.experiments["awd-lstm-ptb"]["cache"]
    assert cache["window"] == 100 and cache["thetas"] and 0.1 in cache["lambdas"]


def test_corpora_merge_the_users_keys_over_the_built_in_ones(workflow):
    p = plan(workflow, corpora={"ptb": {"url": "/mirror"}})
    ptb = p.corpora["ptb"]
    assert ptb["url"] == "/mirror" and ptb["files"]["train"] == "ptb.train.txt"
    assert ptb["digests"]["train"].startswith("sha256:fcea919f")


def test_an_experiment_on_a_corpus_of_ones_own_text(workflow):
    own = {"url": "/texts", "file": "novel.txt", "split": {"test": 0.05}, "prompts": ["it was"]}
    p = plan(workflow, corpora={"novel": own},
             experiments={"tutorial": {"corpus": "novel"}})
    novel = p.corpora["novel"]
    assert list(p.corpora) == ["novel"] and novel["split"] == {"valid": 0.1, "test": 0.05}
    assert novel["vocab"] == {"max_size": None, "min_count": 1} and novel["digests"] == {}
    assert p.prompts("novel") == ["it was"]
    assert plan(workflow, predict={"prompts": ["a b"]}).prompts("ptb") == ["a b"]


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"experiments": {"tutorial": {"corpus": "wikitext-9"}}},
     "experiments.tutorial.corpus: 'wikitext-9' is not a corpus (known: "),
    ({"corpora": {"mine": {"files": {"train": "a", "valid": "b", "test": "c"}}}},
     "corpora.mine.url: missing"),
    ({"corpora": {"mine": {"url": "/x"}}}, "corpora.mine: give either `files`"),
    ({"corpora": {"mine": {"url": "/x", "files": {"train": "a", "valid": "b"}}}},
     "corpora.mine.files: 'test' is a required property"),
    ({"corpora": {"ptb": {"digests": {"train": "md5:00"}}}},
     "corpora.ptb.digests.train: 'md5:00' does not match"),
    ({"experiments": {"data": {}}, "run": ["data"]},
     "experiments.data: the name is reserved for results/data/"),
])
def test_bad_corpora_name_the_key(workflow, overrides, problem):
    assert problem in error(workflow, **overrides)


def test_config_strings_from_the_command_line_are_typed(workflow):
    """As `snakemake --config` gives them: nested scalars as strings, lists and dicts as such."""
    config = typed({"experiments": {"t": {"epochs": "3", "seeds": ["1", "2"],
                                                   "max_batches": "null", "corpus": "1984"}},
                             "sweeps": {"s": {"base": "t", "grid": {"lr": ["0.5", "1"],
                                                                    "clip_per": ["token"],
                                                                    "tied": ["false"]}}},
                             "corpora": {"c": {"url": "2", "split": {"valid": "0.05"}}}},
                            workflow.schema)
    assert config["experiments"]["t"] == {"epochs": 3, "seeds": [1, 2], "max_batches": None,
                                          "corpus": "1984"}
    assert config["sweeps"]["s"]["grid"] == {"lr": [0.5, 1], "clip_per": ["token"],
                                             "tied": [False]}
    assert config["corpora"]["c"] == {"url": "2", "split": {"valid": 0.05}}
    cache = typed({"experiments": {"t": {"cache": {"window": "5", "thetas": ["0.5"]}},
                                            "u": {"cache": "null"}}}, workflow.schema)
    assert cache["experiments"] == {"t": {"cache": {"window": 5, "thetas": [0.5]}},
                                    "u": {"cache": None}}  # either branch of its anyOf


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(RnnlmError, match="not a run folder"):
        Run.of_folder(tmp_path / "tutorial" / "lstm")


def test_the_adaptive_softmax_adds_its_flags_the_full_one_none(workflow):
    exp = {"tutorial": {"softmax": "adaptive", "cutoffs": [2000, 6000]}}
    adaptive = plan(workflow, experiments=exp).experiments["tutorial"]
    full = plan(workflow).experiments["tutorial"]
    assert full["softmax"] == "full" and full["cutoffs"] == [] and full["div_value"] == 4.0
    assert train_flags(adaptive, 1, "lstm") == (
        train_flags(full, 1, "lstm") + " --softmax adaptive --cutoffs 2000 6000 --div-value 4.0")
    typed = plan(workflow, experiments={"tutorial": {"softmax": "adaptive",
                                                     "cutoffs": ["20", "60"], "div_value": "2"}})
    assert train_flags(typed.experiments["tutorial"], 1, "lstm").endswith(
        "--cutoffs 20 60 --div-value 2")


@pytest.mark.parametrize(("exp", "problem"), [
    ({"softmax": "adaptive"}, "experiments.tutorial.cutoffs: softmax adaptive needs cutoffs"),
    ({"softmax": "adaptive", "cutoffs": [6000, 2000]},
     "experiments.tutorial.cutoffs: [6000, 2000] is not increasing"),
    ({"softmax": "adaptive", "cutoffs": [2000, 2000]},
     "experiments.tutorial.cutoffs: [2000, 2000] is not increasing"),
    ({"softmax": "adaptive", "cutoffs": [0]},
     "experiments.tutorial.cutoffs.0: 0 is less than the minimum of 1"),
    ({"softmax": "adaptive", "cutoffs": [2000], "div_value": 0.5},
     "experiments.tutorial.div_value: 0.5 is less than the minimum of 1"),
    ({"softmax": "sampled"}, "experiments.tutorial.softmax: 'sampled' is not one of"),
])
def test_bad_adaptive_softmax_settings_name_the_key(workflow, exp, problem):
    assert problem in error(workflow, experiments={"tutorial": exp})


def test_an_adaptive_softmax_cannot_be_exported_yet(workflow):
    assert "config key export: tutorial has softmax adaptive" in error(
        workflow, experiments={"tutorial": {"softmax": "adaptive", "cutoffs": [2000]}},
        export=["onnx"])


# ---- runs of equal settings are trained once (Plan.shared) -------------------------------------
def test_a_sweep_point_equal_to_its_base_shares_the_bases_runs(workflow):
    p = plan(workflow, run=["tutorial", "lr-dropout"], sweeps=SWEEP,
             experiments={"tutorial": {"seeds": [1, 2]}})
    equal = "lr-dropout/lr~1.0/dropout~0.2"  # the grid's lr 1 is the tutorial's 1.0
    assert p.shared() == {Run(equal, r.mode, r.seed): r for r in p.runs
                          if r.experiment == "tutorial"}
    first = plan(workflow, run=["lr-dropout", "tutorial"], sweeps=SWEEP).shared()
    assert set(first.values()) == {Run(equal, mode, 1) for mode in DEFAULT_MODES}
    # plan order trains


def test_equal_experiments_under_other_names_share_whatever_gives_them_equal_settings(workflow):
    preset = {k: v for k, v in workflow.presets["zaremba-small"][0].items() if k != "cache"}
    p = plan(workflow, run=["zaremba-small", "mine", "tutorial", "again"], modes=["lstm"],
             corpora={"copy": workflow.corpora["ptb"]},  # another name, the same definition
             experiments={"mine": {**preset, "cache": {"window": 50}},  # the cache is no training
                          "again": {"corpus": "copy", "lr": 1, "seeds": [2, 1]}})
    lstm = lambda name, seed: Run(name, "lstm", seed)  # noqa: E731
    assert p.shared() == {lstm("mine", preset["seed"]): lstm("zaremba-small", preset["seed"]),
                          lstm("again", 1): lstm("tutorial", 1)}  # seed 2 is a run of its own


@pytest.mark.parametrize("other", [
    {"seed": 2}, {"corpus": "wikitext-2"}, {"eval_batch_size": 20}, {"batch_size": 20},
    {"lr": 0.5}, {"tied": False}, {"max_batches": 10}, {"corpus": "copy"},
    {"max_batches": 2 ** 53 + 1},  # beside the base's 2 ** 53: equal as floats, not as ints
    {"softmax": "adaptive", "cutoffs": [2000]}, {"cutoffs": [3000, 6000]}, {"div_value": 2.0},
    {"variable_bptt": True}, {"optimizer": "nt-asgd"}, {"weight_dropout": 0.1}])
def test_runs_that_differ_in_what_training_reads_are_not_shared(workflow, other):
    base = {**CONFIG["experiments"]["tutorial"], "max_batches": 2 ** 53}
    if "softmax" not in other and any(key in other for key in ("cutoffs", "div_value")):
        base.update(softmax="adaptive", cutoffs=[2000, 6000])  # changes of an adaptive softmax
    p = plan(workflow, run=["tutorial", "other"],
             corpora={"copy": {**workflow.corpora["ptb"], "url": "/elsewhere"}},
             experiments={"tutorial": base, "other": {**base, **other}})
    assert p.shared() == {}


def test_every_flag_of_rnnlm_train_is_in_the_training_key(workflow):
    """The key is built from the command's flags themselves, so a key that a later issue adds to
    train_flags cannot be left out of it (the adaptive softmax's once were)."""
    p = plan(workflow, run=["tutorial", "adaptive"],
             experiments={"adaptive": {"softmax": "adaptive", "cutoffs": [2000]}})
    full, adaptive = (p.training_key(Run(name, "lstm", 1)) for name in ("tutorial", "adaptive"))
    assert "--softmax adaptive --cutoffs 2000" in adaptive[-1] and full[-1] in adaptive[-1]
    assert p.shared() == {}


def test_runs_the_plan_shares_get_equal_settings_digests_and_others_do_not(workflow):
    """What summary.json digests (train.run_settings of the parsed `rnnlm train` flags) agrees
    with the plan's key: equal for a shared pair, different for a pair that is not."""
    from rnnlm.cli import build_parser
    from rnnlm.cli.training import train_configs
    from rnnlm.provenance import settings_digest
    from rnnlm.train import run_settings

    p = plan(workflow, run=["tutorial", "lr-dropout"], sweeps=SWEEP)

    def digest(run):
        exp = p.experiments[run.experiment]
        args = build_parser().parse_args(["train", "--mode", run.mode, "--vocab", "v",
                                          "--train", "t", "--valid", "v", "--out-dir", "o",
                                          *shlex.split(train_flags(exp, run.seed, run.mode))])
        return settings_digest(run_settings(*train_configs(args, 50), exp["batch_size"],
                                            exp["eval_batch_size"]))

    (shared, trainer), = list(p.shared().items())[:1]
    assert train_flags(p.experiments[shared.experiment], 1, "lstm") != train_flags(
        p.experiments[trainer.experiment], 1, "lstm")  # "--lr 1" against "--lr 1.0": equal
    assert digest(shared) == digest(trainer)
    others = [r for r in p.runs if r.mode == trainer.mode and r not in (shared, trainer)]
    assert len({digest(r) for r in others} | {digest(trainer)}) == len(others) + 1


def test_only_mogrifier_runs_carry_its_flags_so_the_other_modes_keys_are_unchanged(workflow):
    p = plan(workflow, modes=["lstm", "mogrifier"],
             experiments={"tutorial": {"mogrifier_rounds": 3, "mogrifier_rank": 4}})
    exp = p.experiments["tutorial"]
    assert sorted(train_flags(exp, 1, "mogrifier").split(" --")) == sorted(
        (train_flags(exp, 1, "lstm") + " --mogrifier-rounds 3 --mogrifier-rank 4").split(" --"))
    assert "mogrifier" not in train_flags(exp, 1, "lstm")
    keys = {m: p.training_key(Run("tutorial", m, 1)) for m in ("lstm", "mogrifier")}
    assert "--mogrifier-rounds 3" in keys["mogrifier"][-1] and keys["lstm"] != keys["mogrifier"]


@pytest.mark.parametrize("overrides,key,problem", [
    ({"experiments": {"tutorial": {"mogrifier_rank": 300}}},
     "experiments.tutorial.mogrifier_rank", "300 is above nhid and emsize's smaller, 100"),
    ({"export": ["onnx"]}, "export", "mode mogrifier cannot be exported"),
])
def test_the_plan_refuses_what_the_mogrifier_cannot_do_naming_the_key(workflow, overrides, key,
                                                                      problem):
    with pytest.raises(ConfigError) as err:
        plan(workflow, modes=["lstm", "mogrifier"], **overrides)
    assert str(err.value).startswith(f"config key {key}: {problem}") or (
        str(err.value).startswith(f"config key {key}: ") and problem in str(err.value))


def test_a_space_varying_a_mogrifier_key_without_the_mode_is_refused(workflow):
    tune = {"t": {"base": "tutorial", "space": {"mogrifier_rounds": {"choice": [1, 3]}}}}
    with pytest.raises(ConfigError) as err:
        plan(workflow, modes=["lstm"], run=["t"], tunes=tune)
    assert str(err.value).startswith("config key tunes.t.space.mogrifier_rounds: only mode "
                                     "mogrifier reads it")
    assert plan(workflow, modes=["lstm", "mogrifier"], run=["t"], tunes=tune).tunes["t"]
