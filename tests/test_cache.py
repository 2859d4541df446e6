"""The continuous cache: its probability against its definition on small arrays, the grid, and the
`rnnlm cache` command on a trained run."""

import math

import numpy as np
import pytest
from markov import make_source, train_argv, write_corpus

from rnnlm import cli
from rnnlm.adapt.cache import cache_probs, choose, mixed_loss, model_pass, stream_cache_probs
from rnnlm.io import read_json
from rnnlm.mx import mxnet as mx
from rnnlm.mx import nd
from rnnlm.trained import load_model


def by_hand(hidden, targets, window, theta):
    """The cache's probability of each target, one position at a time (NaN: no cache yet)."""
    out = np.full(len(targets), np.nan)
    for t in range(window, len(targets)):
        scores = theta * np.array([hidden[t] @ hidden[i] for i in range(t - window, t)])
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        out[t] = sum(w for w, i in zip(weights, range(t - window, t), strict=True)
                     if targets[i] == targets[t])
    return out


def stream(n=60, hid=5, words=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, hid)).astype(np.float32), rng.integers(words, size=n)


@pytest.mark.parametrize("chunk", [None, 1, 7])
@pytest.mark.parametrize("window", [1, 6, 59])
def test_cache_probability_is_its_definition(window, chunk):
    hidden, targets = stream()
    thetas = [0.3, 1.0, 2.5]
    got = cache_probs(hidden, targets, window, thetas, chunk=chunk)
    for k, theta in enumerate(thetas):
        np.testing.assert_allclose(got[k], by_hand(hidden, targets, window, theta), rtol=1e-5)
    assert np.isnan(got[:, :window]).all() and not np.isnan(got[:, window:]).any()


def test_a_window_longer_than_the_stream_never_applies():
    hidden, targets = stream(n=10)
    assert np.isnan(cache_probs(hidden, targets, 10, [1.0])).all()


def test_the_history_holds_neither_the_current_position_nor_later_ones():
    hidden, targets = stream()
    t = 30
    alone = targets.copy()
    alone[t] = 99  # a word seen nowhere else: only its own position could hold it
    assert cache_probs(hidden, alone, 8, [1.0])[0, t] == 0
    later = hidden.copy(), targets.copy()
    later[0][t + 1:] *= -3
    later[1][t + 1:] = (later[1][t + 1:] + 1) % 4
    before, after = cache_probs(hidden, targets, 8, [1.0]), cache_probs(*later, 8, [1.0])
    np.testing.assert_array_equal(before[:, :t + 1], after[:, :t + 1])
    assert not np.allclose(before[:, t + 1:], after[:, t + 1:])


def test_columns_never_see_each_others_history():
    (h0, y0), (h1, y1) = stream(seed=1), stream(seed=2)
    both = stream_cache_probs(np.stack([h0, h1], axis=1), np.stack([y0, y1], axis=1), 5, [1.0])
    np.testing.assert_allclose(both[:, :, 0], cache_probs(h0, y0, 5, [1.0]))
    np.testing.assert_allclose(both[:, :, 1], cache_probs(h1, y1, 5, [1.0]))


def test_the_mixture_is_its_definition_and_lambda_0_is_the_model_exactly():
    rng = np.random.default_rng(3)
    logp = np.log(rng.uniform(0.01, 1, size=(50, 2)))
    p_cache = rng.uniform(0, 1, size=(2, 50, 2))
    p_cache[:, :7] = np.nan  # no cache yet: the model alone
    lam = 0.3
    mixed = np.where(np.isnan(p_cache), np.exp(logp), lam * p_cache + (1 - lam) * np.exp(logp))
    np.testing.assert_allclose(mixed_loss(logp, p_cache, lam),
                               -np.log(mixed).reshape(2, -1).mean(axis=1), rtol=1e-12)
    assert (mixed_loss(logp, p_cache, 0.0) == -logp.mean()).all()


def test_the_grid_chooses_the_validation_optimum_and_lambda_0_when_the_cache_only_hurts():
    rng = np.random.default_rng(4)
    logp = np.log(rng.uniform(0.05, 0.5, size=(200, 1)))
    p_cache = rng.uniform(0, 1, size=(3, 200, 1))
    thetas, lambdas = [0.5, 1.0, 2.0], [0.1, 0.3, 0.5]
    grid, theta, lam = choose(logp, p_cache, thetas, lambdas)
    assert len(grid) == 3 * 4 and {point["lambda"] for point in grid} == {0.0, 0.1, 0.3, 0.5}
    losses = {(t, a): mixed_loss(logp, p_cache[[k]], a)[0]
              for k, t in enumerate(thetas) for a in [0.0, *lambdas]}
    assert (theta, lam) == min(losses, key=losses.get) and lam > 0
    point = next(p for p in grid if (p["theta"], p["lambda"]) == (theta, lam))
    assert point["ppl"] == pytest.approx(math.exp(losses[theta, lam]))
    _, _, lam = choose(logp, np.zeros_like(p_cache), thetas, lambdas)  # never the target
    assert lam == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on a small Markov corpus, with batch-1 valid and test arrays."""
    folder = tmp_path_factory.mktemp("cache")
    paths = write_corpus(folder, make_source(symbols=6), tokens=(6_000, 700, 900),
                         batch_sizes=(20, 1, 1))
    run = folder / "run"
    assert cli.main(train_argv(paths, run, "lstm", nlayers=2)) == 0
    return run, paths


def test_one_pass_gives_the_last_layer_and_the_model_s_probabilities(trained, tmp_path):
    run, paths = trained
    model = load_model(run, mx.cpu())
    ids = np.load(paths["test"])
    logp, hidden = model_pass(model, nd.array(ids), window=64)
    assert logp.shape == (len(ids) - 1, 1) and hidden.shape == (len(ids) - 1, 1, 16)
    logits = model.decoder(nd.array(hidden)).asnumpy()
    picked = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(np.take_along_axis(picked, ids[1:, :, None], -1)[..., 0], logp,
                               rtol=1e-4)
    out = tmp_path / "test.json"
    assert cli.main(["evaluate", "--run-dir", str(run), "--data", str(paths["test"]),
                     "--out", str(out)]) == 0
    assert -logp.mean() == pytest.approx(read_json(out)["loss"], rel=1e-5)


def run_cache(run, paths, out, *flags):
    return cli.main(["cache", "--run-dir", str(run), "--valid", str(paths["valid"]), "--test",
                     str(paths["test"]), "--out", str(out), "--threads", "1", *flags])


def test_the_cli_chooses_on_validation_and_applies_to_test_once(trained, tmp_path):
    run, paths = trained
    out = tmp_path / "cache.json"
    assert run_cache(run, paths, out, "--window", "50", "--thetas", "0.5", "1",
                     "--lambdas", "0.1", "0.2") == 0
    result = read_json(out)
    assert result["window"] == 50 and result["valid_tokens"] == 699
    assert result["test_tokens"] == 899
    assert len(result["grid"]) == 2 * 3  # lambda 0 added
    best = min(result["grid"], key=lambda point: point["ppl"])
    assert (best["theta"], best["lambda"]) == (result["theta"], result["lambda"])
    assert best["ppl"] == result["valid_ppl_cache"] <= result["valid_ppl"]
    assert all(p["ppl"] == pytest.approx(result["valid_ppl"], rel=1e-12)
               for p in result["grid"] if p["lambda"] == 0)
    evaluated = tmp_path / "test.json"
    assert cli.main(["evaluate", "--run-dir", str(run), "--data", str(paths["test"]),
                     "--out", str(evaluated)]) == 0
    assert result["test_ppl"] == pytest.approx(read_json(evaluated)["test_ppl"], rel=1e-5)
    if result["lambda"] == 0:
        assert result["test_ppl_cache"] == result["test_ppl"]


def test_a_run_without_a_model_is_one_line_naming_it(trained, tmp_path, capsys):
    _, paths = trained
    (tmp_path / "run").mkdir()
    assert run_cache(tmp_path / "run", paths, tmp_path / "cache.json", "--window", "5") == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnlm cache: error: ") and err.count("\n") == 1
    assert "no trained model for the cache (model.json and model.params missing)" in err
    assert not (tmp_path / "cache.json").exists()


def test_a_window_the_split_cannot_fill_is_refused_before_the_pass(trained, tmp_path, capsys):
    """The cache of a window as long as validation's 699 positions would never apply: it was
    exit 0 and "lambda 0", with nothing saying that the cache never ran."""
    run, paths = trained
    out = tmp_path / "cache.json"
    assert run_cache(run, paths, out, "--window", "699") == 1
    assert capsys.readouterr().err == (
        f"rnnlm cache: error: cache window 699 is not below the 699 positions of each of the 1 "
        f"columns of {paths['valid']}: the cache would never apply; lower cache.window below "
        "699\n")
    assert not out.exists()
    assert run_cache(run, paths, out, "--window", "698") == 0


@pytest.mark.parametrize(("flags", "message"), [
    (["--window", "0"], "argument --window: 0 is not an integer >= 1"),
    (["--window", "5", "--thetas", "0"], "argument --thetas: 0 is not a number > 0"),
    (["--window", "5", "--lambdas", "1"], "argument --lambdas: 1 is not a number in [0, 1)"),
])
def test_bad_grid_flags_are_usage_errors(trained, tmp_path, capsys, flags, message):
    run, paths = trained
    with pytest.raises(SystemExit) as stop:
        run_cache(run, paths, tmp_path / "cache.json", *flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err
