"""Predict stage: next-word probabilities, sampling, the CLI, a model trained on a Markov chain."""

import json
import logging

import numpy as np
import pytest

from rnnlm.cli import main
from rnnlm.io import RnnlmError
from rnnlm.model import MODES, ModelConfig, RNNModel, save_model_config
from rnnlm.mx import autograd
from rnnlm.mx import mxnet as mx
from rnnlm.predict import (
    UnreadablePrompt,
    as_text,
    feed,
    generate,
    load_run,
    next_word_probs,
    parse_prompt,
    predict,
    top_words,
)
from rnnlm.tables.predictions import write_predictions_table
from rnnlm.vocab import EOS, UNK, Vocab, write_vocab

CTX = mx.cpu()
WORDS = ["the", "market", "said", "N", "shares", "rose", "fell", "in", UNK, EOS]


def untrained_run(folder, mode="lstm", dropout=0.5, words=WORDS):
    """A run folder (model.json + model.params) of a random model, and its vocab.tsv."""
    vocab = Vocab(words, [len(words) - i for i in range(len(words))])
    write_vocab(vocab, folder / "vocab.tsv")
    run = folder / "exp" / mode / "seed1"
    run.mkdir(parents=True)
    config = ModelConfig(mode, len(vocab), emsize=8, nhid=8, nlayers=2, dropout=dropout,
                         init_range=1.0)
    mx.random.seed(3)
    model = RNNModel(config)
    model.initialize_weights(CTX)
    model.save_parameters(str(run / "model.params"))
    save_model_config(config, run / "model.json")
    return run, folder / "vocab.tsv"


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    run, vocab_path = untrained_run(tmp_path_factory.mktemp("predict"))
    model, vocab = load_run(run, vocab_path, CTX)
    return model, vocab, run, vocab_path


def test_probabilities_sum_to_one_and_top_k_is_sorted(lstm):
    model, vocab, _, _ = lstm
    probs = next_word_probs(model, parse_prompt("the market", vocab), CTX)
    assert probs.shape == (len(vocab),) and probs.dtype == np.float64
    assert abs(probs.sum() - 1) < 1e-5 and (probs > 0).all()
    top = top_words(probs, vocab, 4)
    assert [t["prob"] for t in top] == sorted(probs, reverse=True)[:4]
    assert top[0]["word"] == vocab.words[int(probs.argmax())]
    assert len(top_words(probs, vocab, 100)) == len(vocab)


@pytest.mark.parametrize("mode", MODES)
def test_word_by_word_equals_one_sequence_without_dropout(tmp_path, mode):
    run, vocab_path = untrained_run(tmp_path, mode, dropout=0.5)
    model, vocab = load_run(run, vocab_path, CTX)
    prompt = parse_prompt("the market said N shares", vocab)
    whole = next_word_probs(model, prompt, CTX)
    np.testing.assert_allclose(next_word_probs(model, prompt, CTX, by_word=True), whole,
                               rtol=1e-5, atol=1e-7)
    with autograd.train_mode():  # feed() turns predict mode on: no dropout noise even here
        np.testing.assert_array_equal(next_word_probs(model, prompt, CTX), whole)
    _, state = feed(model, prompt.ids, CTX)
    assert len(state) == (4 if mode in ("lstm", "mogrifier") else 2)


def test_prompt_follows_an_implicit_eos_unless_turned_off(lstm):
    _, vocab, _, _ = lstm
    assert parse_prompt(" the  market ", vocab).ids == [vocab.eos_id, 0, 1]
    assert parse_prompt("the market", vocab, sentence_start=False).ids == [0, 1]


def test_unknown_words_warn_and_read_as_unk(lstm, caplog):
    model, vocab, _, _ = lstm
    with caplog.at_level(logging.WARNING, logger="rnnlm.predict"):
        (record,) = predict(model, vocab, ["the zebra quagga market"], CTX, top_k=3)
    assert record["tokens"] == ["the", UNK, UNK, "market"]
    assert record["unknown"] == ["zebra", "quagga"]
    assert len(record["top"]) == 3
    assert "zebra quagga" in caplog.text and UNK in caplog.text


def test_an_unreadable_prompt_names_its_unknown_words_apart_from_the_prompt():
    words = [w for w in WORDS if w != UNK]
    vocab = Vocab(words, [1] * len(words))
    with pytest.raises(UnreadablePrompt) as error:
        parse_prompt("the company rose sharply", vocab)
    assert str(error.value) == ("prompt 'the company rose sharply': words 'company', 'sharply' "
                                "not in the vocabulary, which has no <unk>; use words of the "
                                "training split")


def test_a_prompt_the_vocabulary_cannot_read_is_reported_not_fatal(tmp_path, capsys):
    """A corpus without <unk>: its prompt's unknown words cannot be read. The prediction says so
    (JSON, table, comparison) and the other prompts are answered: a run never fails on it."""
    words = [w for w in WORDS if w != UNK]
    run, vocab_path = untrained_run(tmp_path, words=words)
    out, md = tmp_path / "predictions.json", tmp_path / "predictions.md"
    assert main(["predict", "--run-dir", str(run), "--vocab", str(vocab_path), "--prompts",
                 "the company said", "the market", "--top-k", "2", "--corpus", "mine",
                 "--out", str(out)]) == 0
    assert ("cannot be read: prompt 'the company said': word 'company' not in the vocabulary, "
            "which has no <unk>") in capsys.readouterr().out
    unread, read = json.loads(out.read_text())["predictions"]
    assert unread["top"] == [] and "which has no <unk>" in unread["error"]
    assert unread["unknown"] == ["company"] and len(read["top"]) == 2
    assert main(["compare-predictions", "--inputs", str(out), "--md", str(md), "--html",
                 str(md.with_suffix(".html"))]) == 0
    text = md.read_text()
    assert "## mine: 9-word vocabulary" in text
    assert "Cannot be read: prompt 'the company said': word 'company' not" in text
    assert "| rank | lstm |" in text.split("### `the market`")[1]
    page = md.with_suffix(".html").read_text()  # the report's page: the same, as HTML
    assert "mine: 9-word vocabulary" in page and "Cannot be read: prompt" in page
    assert page.count("<table") == 1 and ">rank</th>" in page


@pytest.mark.parametrize("text", ["", "   \t "])
def test_an_empty_prompt_is_a_clear_error(lstm, text):
    with pytest.raises(RnnlmError, match="empty prompt"):
        parse_prompt(text, lstm[1])


def test_generation_with_a_seed_is_repeatable(lstm):
    model, vocab, _, _ = lstm
    prompt = parse_prompt("the market", vocab)
    first = generate(model, vocab, prompt, CTX, words=40, temperature=1.5, seed=7)
    assert len(first) == 40 and set(first) <= set(vocab.words)
    assert generate(model, vocab, prompt, CTX, words=40, temperature=1.5, seed=7) == first
    assert generate(model, vocab, prompt, CTX, words=40, temperature=1.5, seed=8) != first
    with pytest.raises(RnnlmError, match="temperature"):
        generate(model, vocab, prompt, CTX, words=5, temperature=0)


def test_eos_becomes_a_line_break():
    assert as_text(["a", "b", EOS, "c", EOS]) == "a b\nc\n"


def printed_tokens(stdout):
    """The tokens `rnnlm generate` printed, prompt first: what counts as a word. Every <eos> is
    one, printed as a line break (the last line break is print's own)."""
    lines = stdout.removesuffix("\n").split("\n")
    return [token for line in lines for token in (*line.split(), EOS)][:-1]


def two_eos_in_a_row(words):
    return any(a == b == EOS for a, b in zip(words, words[1:], strict=False))


@pytest.mark.parametrize(("words", "seed", "shape"), [
    (0, 1, lambda sampled: sampled == []),
    (1, 4, lambda sampled: sampled == [EOS]),
    (5, 6, lambda sampled: sampled[-1] == EOS and EOS not in sampled[:-1]),
    (40, 34, lambda sampled: sampled[-1] == EOS and two_eos_in_a_row(sampled)),
], ids=["none", "eos-alone", "ending-in-eos", "eos-twice-in-a-row"])
def test_generate_prints_exactly_the_words_asked_for(lstm, capsys, words, seed, shape):
    """`rnnlm generate --words N` prints N words after the prompt, an <eos> counting as one: the
    words `generate` samples with the same seed. Each seed gives the case its id names (a new
    model init needs new seeds)."""
    model, vocab, run, vocab_path = lstm
    assert main(["generate", "--run-dir", str(run), "--vocab", str(vocab_path), "--prompt",
                 "the market", "--words", str(words), "--seed", str(seed)]) == 0
    sampled = generate(model, vocab, parse_prompt("the market", vocab), CTX, words, seed=seed)
    assert len(sampled) == words and shape(sampled), sampled
    assert printed_tokens(capsys.readouterr().out) == ["the", "market", *sampled]


def test_cli_predict_generate_and_comparison(lstm, tmp_path, capsys):
    _, _, run, vocab_path = lstm
    common = ["--run-dir", str(run), "--vocab", str(vocab_path)]
    out = tmp_path / "predictions.json"
    assert main(["predict", *common, "--prompts", "the market", "N shares", "--top-k", "3",
                 "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["prompt"] for r in printed] == ["the market", "N shares"]
    saved = json.loads(out.read_text())
    assert (saved["experiment"], saved["mode"], saved["seed"]) == ("exp", "lstm", 1)
    assert (saved["vocab_size"], saved["predictions"]) == (len(WORDS), printed)
    assert main(["predict", *common, "--prompts", "the", "--top-k", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "prompt: the" and table[1].split() == ["rank", "word", "prob"]
    assert len(table) == 4 and table[2].split()[0] == "1"
    assert main(["generate", *common, "--prompt", "the", "--words", "5", "--seed", "1"]) == 0
    printed = printed_tokens(capsys.readouterr().out)
    assert printed[0] == "the" and len(printed) == 1 + 5
    md = tmp_path / "predictions.md"
    assert main(["compare-predictions", "--inputs", str(out), "--md", str(md), "--html",
                 str(md.with_suffix(".html"))]) == 0
    assert "### `the market`" in md.read_text() and "| rank | lstm |" in md.read_text()


def test_comparison_puts_modes_side_by_side(tmp_path):
    top = [{"word": "<unk>", "prob": 0.5}, {"word": "a|b", "prob": 0.25}]
    paths = []
    for mode in ("gru", "rnn_relu"):
        record = {"prompt": "the x", "tokens": ["the", UNK], "unknown": ["x"], "top": top}
        paths.append(tmp_path / f"{mode}.json")
        paths[-1].write_text(json.dumps({"experiment": "e", "mode": mode, "seed": 1,
                                         "corpus": "ptb", "vocab_size": 10_000,
                                         "predictions": [record]}))
    write_predictions_table(paths, tmp_path / "p.md", tmp_path / "p.html")
    lines = (tmp_path / "p.md").read_text().splitlines()
    assert "## ptb: 10,000-word vocabulary" in lines  # the size from the data, not a caption
    assert "| rank | rnn_relu | gru |" in lines  # the modes in their usual order
    assert "| 1 | `<unk>` 0.500 | `<unk>` 0.500 |" in lines
    assert "| 2 | `a\\|b` 0.250 | `a\\|b` 0.250 |" in lines
    assert any("x" in line and "not in the vocabulary" in line.lower() for line in lines)


def test_cli_errors_are_one_line(lstm, tmp_path, capsys):
    _, _, run, vocab_path = lstm
    assert main(["predict", "--run-dir", str(run), "--vocab", str(vocab_path),
                 "--prompts", "the", " "]) == 1
    assert capsys.readouterr().err.strip() == ("rnnlm predict: error: empty prompt; give at least "
                                               "one word, e.g. 'the company said'")
    missing = tmp_path / "nowhere"
    assert main(["generate", "--run-dir", str(missing), "--vocab", str(vocab_path),
                 "--prompt", "the"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rnnlm generate: error: {missing}: no such run folder")
    assert "\n" not in err


# ---- a model trained on a Markov chain predicts the chain's transition rows -------------------

CHAIN = ["a", "b", "c", "d", "e", "f"]


def transitions():
    """P(next | word) over CHAIN + <eos>: peaked rows; <eos> never follows <eos> (no empty line)."""
    states = CHAIN + [EOS]
    rows = {}
    for i, w in enumerate(CHAIN):
        rows[w] = {CHAIN[(i + 1) % 6]: 0.6, CHAIN[(i + 3) % 6]: 0.25, EOS: 0.15}
    rows[EOS] = {"a": 0.5, "c": 0.3, "e": 0.2}
    return states, rows


def write_chain(path, tokens, seed):
    """``tokens`` tokens of the chain as PTB-style lines (an <eos> ends each line)."""
    states, rows = transitions()
    rng = np.random.default_rng(seed)
    word, lines, line = EOS, [], []
    for _ in range(tokens):
        word = rng.choice(states, p=[rows[word].get(s, 0.0) for s in states])
        if word == EOS:
            lines.append(" " + " ".join(line) + " \n")
            line = []
        else:
            line.append(str(word))
    path.write_text("".join(lines))


def test_trained_model_matches_the_chains_transition_rows(tmp_path):
    """Through the real CLI stages (~6 s); the largest distance seen over 4 seeds was 0.06."""
    for split, tokens, seed in (("train", 40000, 0), ("valid", 2000, 1), ("test", 2000, 2)):
        write_chain(tmp_path / f"{split}.txt", tokens, seed)
    d = str(tmp_path)
    assert main(["vocab", "--train", f"{d}/train.txt", "--valid", f"{d}/valid.txt", "--test",
                 f"{d}/test.txt", "--vocab", f"{d}/vocab.tsv", "--stats", f"{d}/stats.json"]) == 0
    for split, batch in (("train", 16), ("valid", 8)):
        assert main(["batchify", "--corpus", f"{d}/{split}.txt", "--vocab", f"{d}/vocab.tsv",
                     "--batch-size", str(batch), "--out", f"{d}/{split}.npy"]) == 0
    assert main(["train", "--mode", "lstm", "--vocab", f"{d}/vocab.tsv", "--train",
                 f"{d}/train.npy", "--valid", f"{d}/valid.npy", "--out-dir", f"{d}/run",
                 "--emsize", "16", "--nhid", "16", "--nlayers", "1", "--dropout", "0",
                 "--lr", "1.0", "--clip", "1.0", "--epochs", "6", "--bptt", "10",
                 "--seed", "1", "--lr-schedule", "fixed", "--decay-after", "3",
                 "--decay-factor", "0.5", "--threads", "1"]) == 0
    model, vocab = load_run(tmp_path / "run", tmp_path / "vocab.tsv", CTX)
    _, rows = transitions()
    for context in ("e f a", "a b", "c f c", "c d", "a d e", "e f"):  # each word last once
        probs = next_word_probs(model, parse_prompt(context, vocab), CTX)
        truth = np.zeros(len(vocab))
        for word, p in rows[context.split()[-1]].items():
            truth[vocab.index[word]] = p
        tv = 0.5 * np.abs(probs - truth).sum()
        assert tv < 0.1, f"after {context!r}: total variation {tv:.3f}"
