"""Preset experiments (workflow/presets/): they validate, `run` selects them, a config experiment
of the same name overrides them key by key, both clipping semantics hold, and the table sets the
published perplexity beside ours."""

import re
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, write_corpus
from snakemake.utils import validate
from test_workflow import snakemake, write_config

from rnnlm import cli
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.mx import autograd, gluon, nd
from rnnlm.mx import mxnet as mx
from rnnlm.vocab import read_vocab

PRESETS = REPO / "workflow" / "presets"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
# The settings the issue and the sources give (workflow/presets/*.yaml cite each one).
EXPECTED = {
    "zaremba-small": {"nhid": 200, "dropout": 0.0, "init_range": 0.1, "epochs": 13,
                      "batch_size": 20, "bptt": 20, "lr": 1.0, "decay_after": 4,
                      "decay_factor": 0.5, "clip": 5.0, "clip_per": "example", "tied": False},
    "zaremba-medium": {"nhid": 650, "dropout": 0.5, "init_range": 0.05, "epochs": 39,
                       "batch_size": 20, "bptt": 35, "lr": 1.0, "decay_after": 6,
                       "decay_factor": 1 / 1.2, "clip": 5.0, "clip_per": "example"},
    "zaremba-large": {"nhid": 1500, "dropout": 0.65, "init_range": 0.04, "epochs": 55,
                      "batch_size": 20, "bptt": 35, "lr": 1.0, "decay_after": 14,
                      "decay_factor": 1 / 1.15, "clip": 10.0, "clip_per": "example"},
    "tied-medium": {"emsize": 650, "nhid": 650, "dropout": 0.5, "tied": True, "epochs": 40,
                    "lr_schedule": "plateau", "clip": 0.2, "clip_per": "token"},
    "tied-large": {"emsize": 1500, "nhid": 1500, "dropout": 0.65, "tied": True, "epochs": 40,
                   "lr_schedule": "plateau", "clip": 0.2, "clip_per": "token"},
    **{name: {"emsize": 200, "nhid": 200, "nlayers": 2, "dropout": 0.2, "tied": tied,
              "init_range": 0.1, "rnn_init": "pytorch", "lr": 20 / 35, "clip": 0.25,
              "clip_per": "token", "epochs": epochs, "batch_size": 20, "eval_batch_size": 10,
              "bptt": 35, "seed": 1111, "lr_schedule": "plateau", "restore_best": False}
       for name, tied, epochs in (("pytorch-small", False, 6), ("pytorch-small-tied", True, 6),
                                  ("pytorch-tied", True, 40))},
    "lstm-wt103-adaptive": {"corpus": "wikitext-103", "emsize": 200, "nhid": 200, "tied": False,
                            "softmax": "adaptive", "cutoffs": [20000, 60000], "div_value": 4.0,
                            "batch_size": 20, "bptt": 35, "lr": 20 / 35, "clip": 0.25},
    # WikiText-2: the MXNet Gluon example (gluon-wt2-*) and GluonNLP's standard_lstm_lm
    # (gluonnlp-*, with the NT-ASGD and variable windows of its logs, blank lines as <eos>)
    **{f"{family}-wt2-{n}": {"corpus": corpus, "emsize": n, "nhid": n, "nlayers": 2,
                             "dropout": dropout, "tied": True, "init_range": 0.1,
                             "rnn_init": "pytorch", "lr": 20 / 35, "clip": 0.25,
                             "clip_per": "token", "epochs": epochs, "batch_size": 20,
                             "eval_batch_size": eval_batch, "bptt": 35, **train}
       for family, corpus, eval_batch, train, runs in (
           ("gluon", "wikitext-2", 20, {"lr_schedule": "plateau", "restore_best": False,
                                        "optimizer": "sgd", "variable_bptt": False},
            ((200, 0.2, 20), (650, 0.5, 40), (1500, 0.65, 60))),
           ("gluonnlp", "wikitext-2-eos", 10, {"optimizer": "nt-asgd", "nonmono": 5,
                                                "variable_bptt": True, "finetune_epochs": 0},
            ((200, 0.2, 36), (650, 0.5, 47), (1500, 0.65, 38))))
       for n, dropout, epochs in runs},
    # awd-lstm-lm's PTB and WikiText-2 LSTM commands: main.py's defaults, the README's flags
    **{f"awd-lstm-{name}": {"corpus": corpus, "emsize": 400, "nhid": 1150, "nlayers": 3,
                            "tied": True, "dropout": 0.0, "dropout_e": 0.1, "dropout_i": drop_i,
                            "dropout_h": drop_h, "dropout_o": 0.4, "weight_dropout": 0.5,
                            "alpha": 2.0, "beta": 1.0, "wd": 1.2e-6, "init_range": 0.1,
                            "rnn_init": "pytorch", "lr": 30 / 70, "clip": 0.25,
                            "clip_per": "token", "bptt": 70, "variable_bptt": True,
                            "optimizer": "nt-asgd", "nonmono": 5, "epochs": epochs,
                            "finetune_epochs": epochs, "batch_size": batch, "eval_batch_size": 10,
                            "seed": seed}
       for name, corpus, drop_i, drop_h, epochs, batch, seed in (
           ("ptb", "ptb", 0.4, 0.25, 500, 20, 141),
           ("wt2", "wikitext-2-eos", 0.65, 0.2, 750, 80, 1882))},
    # AWD-LSTM's regularisation at pytorch-small-tied's sizes, 3 epochs (rnnlm's own)
    "awd-lstm-cpu": {"emsize": 200, "nhid": 200, "nlayers": 2, "tied": True, "dropout": 0.0,
                     "dropout_e": 0.05, "dropout_i": 0.2, "dropout_h": 0.125, "dropout_o": 0.2,
                     "weight_dropout": 0.25, "alpha": 2.0, "beta": 1.0, "wd": 1.2e-6,
                     "lr": 30 / 35, "clip": 0.25, "clip_per": "token", "bptt": 35,
                     "variable_bptt": True, "optimizer": "nt-asgd", "nonmono": 5, "epochs": 2,
                     "finetune_epochs": 1, "batch_size": 20, "seed": 1111},
}
# awd-lstm-lm's pointer.py windows, each AWD preset's cache
CACHE_WINDOW = {"awd-lstm-ptb": 500, "awd-lstm-wt2": 3785}
PUBLISHED_TEST = {"zaremba-small": 114.5, "zaremba-medium": 82.7, "zaremba-large": 78.4,
                  "tied-medium": 75.3, "tied-large": 72.0, "pytorch-small": 117.61,
                  "pytorch-small-tied": 110.44, "pytorch-tied": 87.17,
                  "gluon-wt2-200": 107.49, "gluon-wt2-650": 91.51, "gluon-wt2-1500": 88.42,
                  "gluonnlp-wt2-200": 102.49, "gluonnlp-wt2-650": 85.82,
                  "gluonnlp-wt2-1500": 81.99, "awd-lstm-ptb": 56.5, "awd-lstm-wt2": 64.7}
PUBLISHED_VALID = {"zaremba-small": 120.7, "zaremba-medium": 86.2, "zaremba-large": 82.2,
                   "gluonnlp-wt2-200": 108.17, "gluonnlp-wt2-650": 91.30,
                   "gluonnlp-wt2-1500": 86.28,
                   "awd-lstm-ptb": 58.8, "awd-lstm-wt2": 67.4}  # the others: a test figure only
SMALL_FLAGS = ("--emsize 200 --nhid 200 --nlayers 2 --dropout 0.0 --init-range 0.1 "
               "--rnn-init init_range --lr 1.0 --clip 5.0 --clip-per example --epochs 13 "
               "--bptt 20 --seed 1 --lr-schedule fixed --decay-after 4 --decay-factor 0.5 "
               "--dropout-e 0.0 --dropout-i 0.0 --dropout-h 0.0 --dropout-o 0.0 "
               "--weight-dropout 0.0 --alpha 0.0 --beta 0.0 --wd 0.0 --optimizer sgd --nonmono 5 "
               "--finetune-epochs 0 --restore-best --no-tied --no-variable-bptt")


def schema_experiment(path):
    """A preset file through the config schema as an experiment; returns it with defaults."""
    preset = yaml.safe_load(path.read_text())
    published = preset.pop("published")
    doc = {"experiments": {path.stem: preset}}
    validate(doc, str(SCHEMA))
    return doc["experiments"][path.stem], published


def test_every_preset_validates_as_an_experiment_and_has_its_published_numbers():
    assert sorted(p.stem for p in PRESETS.glob("*.yaml")) == sorted(EXPECTED)
    experiment_keys = set(yaml.safe_load(SCHEMA.read_text())["properties"]["experiments"][
        "additionalProperties"]["properties"])
    for name, expected in EXPECTED.items():
        exp, published = schema_experiment(PRESETS / f"{name}.yaml")
        assert set(exp) == experiment_keys  # every key, defaults filled
        want = {"corpus": "ptb", **expected}  # the schema's default corpus unless the file says
        lists = [k for k, v in want.items() if isinstance(v, list)]  # approx takes numbers
        assert {k: exp[k] for k in want if k not in lists} == pytest.approx(
            {k: v for k, v in want.items() if k not in lists}), name
        assert all(exp[k] == want[k] for k in lists), name
        if exp["tied"] and exp["emsize"] != exp["nhid"]:  # AWD's layout: the last layer's size
            assert name.startswith("awd-lstm-") and exp["emsize"] == 400
        assert published["test"] == PUBLISHED_TEST.get(name) and published["source"]
        assert published["valid"] == PUBLISHED_VALID.get(name), name


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A working directory on a generated mirror, with the test suite's two experiments."""
    mirror = tmp_path_factory.mktemp("mirror")
    return write_config(tmp_path_factory.mktemp("fresh"), mirror, write_corpus(mirror))


def shell_commands(workdir, *config, **kwargs):
    result = snakemake(workdir, "--dry-run", "--printshellcmds", "--config", *config, **kwargs)
    return re.findall(r"^(?:Shell command: )?(rnnlm \S+ .*)$", result.stdout, re.M)


def test_run_selects_a_preset_in_every_mode_with_its_published_number(fresh):
    commands = shell_commands(fresh, "run=[zaremba-small, small]")
    train = [c for c in commands if c.startswith("rnnlm train") and "zaremba-small" in c]
    assert sorted(re.search(r"--mode (\S+)", c).group(1) for c in train) == sorted(
        ["rnn_relu", "rnn_tanh", "lstm", "gru"])
    for command in train:
        assert ("--train results/data/ptb/train.b20.npy --valid results/data/ptb/valid.b20.npy"
                in command)
        assert SMALL_FLAGS in command
    [table] = [c for c in commands if c.startswith("rnnlm table")]
    assert "results/small/lstm/seed1" in table  # the other experiment has no published number
    assert "--published zaremba-small=114.5 --runs-csv " in table


def flag_values(command):
    """{flag: its value, or True for a switch} of one shell command."""
    words = shlex.split(command)
    return {word[2:]: True if value is None or value.startswith("--") else value
            for word, value in zip(words, [*words[1:], None], strict=True)
            if word.startswith("--")}


@pytest.mark.parametrize("name", ["gluon-wt2-1500", "gluonnlp-wt2-200", "awd-lstm-ptb",
                                  "awd-lstm-wt2"])
def test_preset_reaches_data_train_and_table_with_its_settings(fresh, name):
    """A preset through the workflow: its hyperparameters become `rnnlm train` flags (a key at
    the schema's default may go unsaid), its batch sizes the arrays' widths, its corpus's
    blank-line reading the vocab and batchify flags, and its published test perplexity the
    table's."""
    expected = EXPECTED[name]
    defaults = {key: spec["default"] for key, spec in yaml.safe_load(SCHEMA.read_text())[
        "properties"]["experiments"]["additionalProperties"]["properties"].items()}
    commands = shell_commands(fresh, f"run=[{name}]", "modes=[lstm]")
    [train] = [c for c in commands if c.startswith("rnnlm train")]
    flags = flag_values(train)
    for key, value in expected.items():
        flag = key.replace("_", "-")
        if key in ("corpus", "batch_size", "eval_batch_size") or (
                flag not in flags and value == defaults[key]):
            continue
        if isinstance(value, bool):
            assert flags.get(flag) is (True if value else None), key
        elif isinstance(value, str):
            assert flags[flag] == value, key
        else:
            assert float(flags[flag]) == pytest.approx(value), key
    data = f"results/data/{expected['corpus']}"
    assert flags["train"] == f"{data}/train.b{expected['batch_size']}.npy"
    assert flags["valid"] == f"{data}/valid.b{expected['eval_batch_size']}.npy"
    eos = expected["corpus"] == "wikitext-2-eos"  # the corpus that reads blank lines as <eos>
    data_stages = [c for c in commands if c.startswith(("rnnlm vocab", "rnnlm batchify"))]
    # vocab, the train, valid and test arrays, and the cache's batch-1 valid and test
    assert len(data_stages) == (6 if name in CACHE_WINDOW else 4)
    assert all(("--blank-lines eos" in c) is eos for c in data_stages)
    [table] = [c for c in commands if c.startswith("rnnlm table")]
    assert f"--published {name}={PUBLISHED_TEST[name]} " in table


def test_the_cpu_sized_awd_preset_asks_for_the_cache_at_pointers_ptb_window():
    assert schema_experiment(PRESETS / "awd-lstm-cpu.yaml")[0]["cache"]["window"] == 500


@pytest.mark.parametrize("name", sorted(CACHE_WINDOW))
def test_awd_presets_keep_the_cache_and_the_other_published_figures(name):
    """The fine-tuned figures are `published` (the preset fine-tunes); the comments keep the
    base and cache figures of awd-lstm-lm's README, and the cache line pointer.py's window."""
    text = (PRESETS / f"{name}.yaml").read_text()
    assert yaml.safe_load(text)["cache"] == {"window": CACHE_WINDOW[name]}
    base, cached = {"awd-lstm-ptb": ("61.2 / 58.8", "53.2 / 52.5"),
                    "awd-lstm-wt2": ("68.7 / 65.6", "52.2 / 50.6")}[name]
    assert f"base model's were {base} [readme]" in text
    assert f"The cache's {cached} [readme] are the cache line's" in text
    assert yaml.safe_load(text)["finetune_epochs"] == yaml.safe_load(text)["epochs"]


def test_awd_preset_trains_fine_tunes_and_reaches_the_table(fresh, tmp_path):
    """awd-lstm-ptb run by the workflow, its sizes and epochs cut down and every other key its
    own but the cache's window (its 500 positions are longer than this corpus's validation
    stream, which the cache refuses): the tied layout's last layer has emsize units, fine-tuning
    adds its epoch, and the table sets the fine-tuned published figure beside the run."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(fresh / "config.yaml", workdir / "config.yaml")
    snakemake(workdir, "results/perplexity.csv", "--cores", "1", "--config",
              "run=[awd-lstm-ptb]", "modes=[lstm]", "experiments={awd-lstm-ptb: {emsize: 8, "
              "nhid: 16, epochs: 2, finetune_epochs: 1, max_batches: 2, cache: {window: 100}}}")
    [row] = pd.read_csv(workdir / "results/perplexity.csv").itertuples()
    vocab = len(read_vocab(workdir / "results/data/ptb/vocab.tsv"))
    layers = [(8, 16), (16, 16), (16, 8)]  # (input, units): the last has emsize units
    lstm = sum(4 * units * (inputs + units) + 8 * units for inputs, units in layers)
    assert row.param_count == vocab * 8 + vocab + lstm  # tied embedding, decoder bias, LSTMs
    assert (row.experiment, row.epochs_mean, row.published_test_ppl) == ("awd-lstm-ptb", 3, 56.5)


def test_config_experiment_of_a_preset_name_overrides_it_key_by_key(fresh, tmp_path):
    """Keys set in config.yaml and in --config win; the preset gives the others."""
    config = yaml.safe_load((fresh / "config.yaml").read_text())
    config["experiments"]["zaremba-small"] = {"nhid": 300, "max_batches": 7}
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    [train] = [c for c in shell_commands(workdir, "run=[zaremba-small]", "modes=[gru]",
                                         "experiments={zaremba-small: {epochs: 2}}")
               if c.startswith("rnnlm train")]
    expected = (SMALL_FLAGS.replace("--nhid 200", "--nhid 300").replace("--epochs 13", "--epochs 2")
                .replace("--decay-factor 0.5", "--decay-factor 0.5 --max-batches 7"))
    assert expected in train


def test_unknown_run_name_lists_experiments_and_presets(fresh):
    result = snakemake(fresh, "--config", "run=[zaremba-tiny]", check=False)
    assert result.returncode != 0
    assert ("config key run: 'zaremba-tiny' is not in experiments (known: small, wide), sweeps "
            "(none), tunes (none) nor a preset "
            f"(workflow/presets/: {', '.join(sorted(EXPECTED))})") in result.stderr
    assert "gluon-wt2-1500, gluon-wt2-200, gluon-wt2-650, gluonnlp-wt2-1500" in result.stderr


def test_bad_preset_file_stops_the_workflow_naming_file_and_key(fresh, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "Snakefile", repo / "Snakefile")
    shutil.copytree(REPO / "workflow", repo / "workflow")
    (repo / "workflow/presets/broken.yaml").write_text("nhid: 0\npublished: {test: 80}\n")
    result = snakemake(fresh, snakefile=repo / "Snakefile", check=False)
    assert result.returncode != 0
    assert "preset workflow/presets/broken.yaml: key nhid: 0 is less than the minimum of 1" in (
        result.stderr)


def train_one_window(tmp_path, clip_per, clip=1e-3, lr=1.0, bptt=5):
    """`rnnlm train` for one window of a small LSTM without dropout: the model before, the model
    after, and the training array."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    data, run = tmp_path / "data", tmp_path / clip_per
    assert cli.main(["vocab", *[f"--{s}={corpus}/ptb.{s}.txt" for s in ("train", "valid", "test")],
                     "--vocab", f"{data}/vocab.tsv", "--stats", f"{data}/stats.json"]) == 0
    for split in ("train", "valid"):
        assert cli.main(["batchify", "--corpus", f"{corpus}/ptb.{split}.txt", "--vocab",
                         f"{data}/vocab.tsv", "--batch-size", "4", "--out",
                         f"{data}/{split}.npy"]) == 0
    model_flags = {"emsize": 8, "nhid": 8, "nlayers": 1, "dropout": 0.0, "init_range": 0.1}
    assert cli.main(["train", "--mode", "lstm", "--vocab", f"{data}/vocab.tsv", "--train",
                     f"{data}/train.npy", "--valid", f"{data}/valid.npy", "--out-dir", str(run),
                     *[f"--{k.replace('_', '-')}={v}" for k, v in model_flags.items()],
                     "--no-tied", "--lr", str(lr), "--clip", str(clip), "--clip-per", clip_per,
                     "--bptt", str(bptt), "--epochs", "1", "--max-batches", "1",
                     "--seed", "3"]) == 0
    config = ModelConfig("lstm", len(read_vocab(data / "vocab.tsv")), tied=False, **model_flags)
    mx.random.seed(3)  # the initial weights, drawn as `train` draws them
    before = RNNModel(config)
    before.initialize_weights([mx.cpu()])
    after = RNNModel(config)
    after.load_parameters(str(run / "model.params"), ctx=mx.cpu())
    return before, after, np.load(data / "train.npy")


def weights(model):
    return [p.data().asnumpy().astype(np.float64) for p in model.collect_params().values()]


@pytest.mark.parametrize(("clip_per", "bound"), [("token", 1e-3 * 5), ("example", 1e-3)])
def test_clipping_bounds_the_step_as_documented(tmp_path, clip_per, bound):
    """Where clipping binds, SGD moves the weights by lr x the cap on the per-example gradient:
    token: clip per token, summed over the bptt (5) steps; example: clip itself."""
    before, after, _ = train_one_window(tmp_path, clip_per)
    steps = [a - b for a, b in zip(weights(after), weights(before), strict=True)]
    assert np.sqrt(sum((s**2).sum() for s in steps)) == pytest.approx(bound, rel=1e-3)


@pytest.mark.parametrize("clip", [0.25, 1e-3])  # 1e-3: the clip binds
def test_pytorch_mapping_takes_the_pytorch_examples_step(tmp_path, clip):
    """The pytorch-* presets' mapping (lr 20 / bptt, clip_per token, the same clip): one window
    moves the weights as PyTorch's main.py does, CrossEntropyLoss's mean over the window's
    tokens, clip_grad_norm(params, clip), p -= 20 * grad."""
    bptt = 5
    before, after, data = train_one_window(tmp_path, "token", clip=clip, lr=20 / bptt, bptt=bptt)
    x, y = nd.array(data[:bptt]), nd.array(data[1:bptt + 1])
    params = list(before.collect_params().values())
    with autograd.record():
        logits, _ = before(x, before.begin_state(data.shape[1], mx.cpu()))
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(logits.reshape((-3, -1)),
                                                    y.reshape((-1,))).mean()
    loss.backward()
    grads = [p.grad().asnumpy().astype(np.float64) for p in params]
    norm = np.sqrt(sum((g**2).sum() for g in grads))
    scale = min(1.0, clip / (norm + 1e-6))
    expected = [w - 20 * scale * g for w, g in zip(weights(before), grads, strict=True)]
    for theirs, ours in zip(expected, weights(after), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=2e-6)


@pytest.mark.slow
def test_zaremba_small_runs_two_windows_on_the_real_ptb(shared_ptb, tmp_path):
    """The real preset (its dims, batch, bptt, clipping) for two windows: CI's preset run."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, "results/perplexity.csv", "--cores", "2", "--config",
              f"corpora={{ptb: {{url: {shared_ptb.as_uri()}}}}}",
              "run=[zaremba-small]", "modes=[lstm]",
              "experiments={zaremba-small: {max_batches: 2, epochs: 1}}")
    table = pd.read_csv(tmp_path / "results/perplexity.csv")
    [row] = table.itertuples()
    assert (row.experiment, row.mode, row.param_count) == ("zaremba-small", "lstm", 4_653_200)
    assert row.published_test_ppl == 114.5
    assert row.gap_pct == pytest.approx(100 * (row.test_ppl_mean / 114.5 - 1))
    assert 1000 < row.test_ppl_mean < 10000  # two windows: a little better than uniform (10,000)
