"""Config faults: each stops `snakemake` before any job runs, in one line naming the key; and the
same values given to `rnnlm` directly stop it before any work."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from markov import make_source, train_argv
from markov import write_corpus as write_arrays

from faults.pipeline import (
    MESSAGES,
    copy_workdir,
    prepare_data,
    run_failing,
    snakemake,
    tiny_workflow,
)
from rnnlm import cli

BAD_CONFIGS = {  # case: --config overrides of the tiny workflow
    "unknown mode": ["modes=[lstm, lstmm]"],
    "unknown key": ["epoch=3"],
    "unknown experiment key": ["experiments={tiny: {lr_rate: 1}}"],
    "zero lr": ["experiments={tiny: {lr: 0}}"],
    "negative epochs": ["experiments={tiny: {epochs: -2}}"],
    "zero batch size": ["experiments={tiny: {batch_size: 0}}"],
    "negative bptt": ["experiments={tiny: {bptt: -1}}"],
    "dropout 1": ["experiments={tiny: {dropout: 1}}"],
    "negative dropout": ["experiments={tiny: {dropout: -0.1}}"],
    "AWD dropout 1": ["experiments={tiny: {weight_dropout: 1}}"],
    "negative alpha": ["experiments={tiny: {alpha: -1}}"],
    "negative beta": ["experiments={tiny: {beta: -0.5}}"],
    "negative weight decay": ["experiments={tiny: {wd: -0.000001}}"],
    "nt-asgd with a fixed schedule": [
        "experiments={tiny: {optimizer: nt-asgd, lr_schedule: fixed}}"],
    "gpu without gpus": ["device=gpu", "gpus=0"],
    "experiment name not a folder name": ["experiments={a/b: {}}", "run=[a/b]"],
    "unknown corpus": ["experiments={tiny: {corpus: wikitext-9}}"],
    "unknown blank_lines": ["corpora={ptb: {blank_lines: keep}}"],
    "empty seed list": ["experiments={tiny: {seeds: []}}"],
    "duplicate seed": ["experiments={tiny: {seeds: [1, 2, 1]}}"],
    "unknown key in a grid": ["sweeps={s: {base: tiny, grid: {lr_rate: [1, 2]}}}", "run=[s]"],
    "grid value refused": ["sweeps={s: {base: tiny, grid: {dropout: [0.5, 1.5]}}}", "run=[s]"],
    "sweep name clash": ["sweeps={tiny: {base: tiny, grid: {lr: [1, 2]}}}", "run=[tiny]"],
    "unknown key in a space": ["tunes={t: {base: tiny, space: {lr_rate: {uniform: [0, 1]}}}}",
                               "run=[t]"],
    "distribution lo above hi": ["tunes={t: {base: tiny, space: {lr: {uniform: [2, 1]}}}}",
                                 "run=[t]"],
    "log_uniform lo 0": ["tunes={t: {base: tiny, space: {lr: {log_uniform: [0, 1]}}}}", "run=[t]"],
    "drawn point refused": ["tunes={t: {base: tiny, space: {nhid: {choice: [4, -2]}}}}",
                            "run=[t]"],
    "rungs not increasing": ["tunes={t: {base: tiny, rungs: [1, 3, 3], space: {lr: {uniform: "
                             "[0.5, 2]}}}}", "run=[t]"],
    "eta below 2": ["tunes={t: {base: tiny, eta: 1, space: {lr: {uniform: [0.5, 2]}}}}",
                    "run=[t]"],
    "no trials": ["tunes={t: {base: tiny, trials: 0, space: {lr: {uniform: [0.5, 2]}}}}",
                  "run=[t]"],
    "tune name clash": ["tunes={tiny: {base: tiny, space: {lr: {uniform: [0.5, 2]}}}}",
                        "run=[tiny]"],
    "cache window 0": ["experiments={tiny: {cache: {window: 0}}}"],
    "cache lambda 1": ["experiments={tiny: {cache: {lambdas: [0.1, 1]}}}"],
    "dynamic_eval negative lr": ["experiments={tiny: {dynamic_eval: {lr: [1.0e-4, -1.0e-4]}}}"],
    "dynamic_eval negative decay": ["experiments={tiny: {dynamic_eval: {decay: [-0.002]}}}"],
    "dynamic_eval segment 0": ["experiments={tiny: {dynamic_eval: {segment: 0}}}"],
    "dynamic_eval empty grid": ["experiments={tiny: {dynamic_eval: {lr: []}}}"],
    "cutoffs not increasing": ["experiments={tiny: {softmax: adaptive, cutoffs: [6000, 2000]}}"],
    "div_value below 1": ["experiments={tiny: {softmax: adaptive, cutoffs: [2], div_value: 0.5}}"],
    "fractional epochs": ["experiments={tiny: {epochs: 2.5}}"],
    "NaN lr": ["experiments={tiny: {lr: .nan}}"],
    "infinite init_range": ["experiments={tiny: {init_range: .inf}}"],
    "NaN weight decay": ["experiments={tiny: {wd: .nan}}"],
    "infinite alpha": ["experiments={tiny: {alpha: .inf}}"],
    "seed beyond MXNet's": ["experiments={tiny: {seed: 2147483648}}"],
    "corpus name ending in a newline": ['corpora={"nl\\n": {url: /elsewhere, file: all.txt}}'],
    "experiment name too long": [f"experiments={{{'a' * 300}: {{}}}}", f"run=[{'a' * 300}]"],
    "negative tune seed": ["tunes={t: {base: tiny, seed: -5, space: {lr: {uniform: [0.5, 2]}}}}",
                           "run=[t]"],
    "negative tune seeds": ["tunes={t: {base: tiny, seeds: [-1, 2], space: {lr: {uniform: "
                            "[0.5, 2]}}}}", "run=[t]"],
    "too many trials": ["tunes={t: {base: tiny, trials: 5000, space: {lr: {uniform: [0.5, 2]}}}}",
                        "run=[t]"],
    "sweep folder too long": [f"sweeps={{s: {{base: tiny, grid: {{max_batches: [{10 ** 260}]}}}}}}",
                              "run=[s]"],
    "nhid over MXNet's array limit": ["experiments={tiny: {nhid: 100000, nlayers: 2}}"],
    "negative mogrifier rounds": ["modes=[mogrifier]",
                                  "experiments={tiny: {mogrifier_rounds: -1}}"],
    "mogrifier rank above nhid": ["modes=[mogrifier]", "experiments={tiny: {mogrifier_rank: 999}}"],
    "mogrifier key varied without the mode": [
        "tunes={t: {base: tiny, space: {mogrifier_rank: {choice: [1, 2]}}}}", "run=[t]"],
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, tiny_mirror):
    """{case: (its working directory, its snakemake)}: each only parses the workflow, so two run
    at a time, each in a folder of its own."""
    root = tmp_path_factory.mktemp("config")

    def run(number_case):
        number, case = number_case
        workdir = tiny_workflow(root / str(number), *tiny_mirror)
        return workdir, snakemake(workdir, "--cores", "1", "--config", *BAD_CONFIGS[case],
                                  check=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(BAD_CONFIGS, pool.map(run, enumerate(BAD_CONFIGS)), strict=True))


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_config_stops_before_any_job_naming_the_key(outcomes, case):
    workdir, result = outcomes[case]
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("config key ")]
    assert len(lines) == 1 and MESSAGES[case] in lines[0], result.stderr[-2000:]
    assert lines[0].endswith("(see workflow/schemas/config.schema.yaml)")
    assert "rule " not in result.stdout + result.stderr  # no job was even planned
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def test_digests_null_takes_the_corpus_files_as_they_are(tmp_path, tiny_mirror):
    """The built-in ptb's digests are PTB's; null drops them, so a mirror of other text (the
    generated one) downloads and runs its data stages instead of failing its checksums."""
    mirror, _ = tiny_mirror
    workdir = tiny_workflow(tmp_path, *tiny_mirror)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["corpora"] = {"ptb": {"url": mirror.as_uri(), "digests": None}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    prepare_data(workdir)
    for split in ("train", "valid", "test"):
        assert (workdir / f"resources/ptb/{split}.txt").read_bytes() == (
            mirror / f"ptb.{split}.txt").read_bytes()
    assert (workdir / "results/data/ptb/train.b4.npy").is_file()


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    return write_arrays(tmp_path_factory.mktemp("arrays"), make_source(symbols=6),
                        tokens=(2_000, 500, 500))


@pytest.mark.parametrize(("flags", "message"), [
    ({"lr": 0}, "lr must be positive, got 0.0"),
    ({"epochs": 0}, "epochs must be at least 1, got 0"),
    ({"bptt": -3}, "bptt must be at least 1, got -3"),
    ({"dropout": 1}, "dropout must be in [0, 1), got 1.0"),
    ({"dropout_h": 1}, "dropout_h must be in [0, 1), got 1.0"),
    ({"alpha": -1}, "alpha must be at least 0, got -1.0"),
    ({"optimizer": "nt-asgd", "lr_schedule": "fixed"}, "lr_schedule fixed contradicts it"),
    ({"softmax": "adaptive", "cutoffs": 6}, MESSAGES["cutoff beyond the vocabulary"]),
    ({"softmax": "adaptive", "cutoffs": 2, "div_value": 0.5}, "div_value 0.5 is below 1"),
])
def test_bad_train_flags_stop_rnnlm_before_any_work(arrays, tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert cli.main(train_argv(arrays, out, **flags)) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnlm train: error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_unknown_mode_is_a_usage_error(arrays, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(train_argv(arrays, tmp_path / "run", mode="lstmm"))
    assert stop.value.code == 2
    assert "argument --mode: invalid choice: 'lstmm'" in capsys.readouterr().err


def test_the_cache_of_an_untrained_run_stops_rnnlm_in_one_line(arrays, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()  # a folder the train stage never finished in
    out = run / "cache.json"
    assert cli.main(["cache", "--run-dir", str(run), "--valid", str(arrays["valid"]), "--test",
                     str(arrays["test"]), "--window", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnlm cache: error: ") and err.count("\n") == 1
    assert MESSAGES["cache of an untrained run"] in err and not out.exists()


def test_a_cache_window_the_split_cannot_fill_stops_the_cache(data_ready, tmp_path, tiny_mirror):
    """It was exit 0 and "lambda 0", with nothing saying that the cache never ran. The window is
    the schema's to take (no split length is known before the download): the cache job refuses
    it, after training, which it keeps."""
    workdir = tiny_workflow(copy_workdir(data_ready, tmp_path / "work"), *tiny_mirror,
                            cache={"window": 100_000})
    error = run_failing(workdir, "results/logs/cache/tiny/lstm/seed1.log",
                        "results/tiny/lstm/seed1/cache.json")
    assert re.fullmatch(r"rnnlm cache: error: cache window 100000 is not below the ([0-9]+) "
                        r"positions of each of the 1 columns of results/data/ptb/valid\.b1\.npy: "
                        + re.escape(MESSAGES["cache window never applies"]) + r" \1", error), error
    assert (workdir / "results/tiny/lstm/seed1/model.params").is_file()
    assert not (workdir / "results/tiny/lstm/seed1/cache.json").exists()


def test_dynamic_evaluation_of_an_untrained_run_stops_rnnlm_in_one_line(arrays, tmp_path,
                                                                       capsys):
    run = tmp_path / "run"
    run.mkdir()  # a folder the train stage never finished in
    out = run / "dynamic_eval.json"
    assert cli.main(["dynamic-eval", "--run-dir", str(run), "--train", str(arrays["train"]),
                     "--valid", str(arrays["valid"]), "--test", str(arrays["test"]),
                     "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnlm dynamic-eval: error: ") and err.count("\n") == 1
    assert MESSAGES["dynamic evaluation of an untrained run"] in err and not out.exists()
