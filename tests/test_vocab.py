"""Vocabulary stage: train-only vocabulary, deterministic ids, max_size / min_count with <unk>
added when needed, statistics per split, streamed input."""

import collections
import json

import numpy as np
import pytest
from conftest import rnnlm

from rnnlm import vocab as vocab_module
from rnnlm.io import RnnlmError
from rnnlm.vocab import build_vocab, count_words, encode_file, read_vocab


def _write(path, text):
    path.write_text(text)
    return path


def _splits(tmp_path, train, valid, test):
    return [_write(tmp_path / f"{name}.txt", text)
            for name, text in (("train", train), ("valid", valid), ("test", test))]


def _vocab_cli(tmp_path, paths, *flags):
    """`rnnlm vocab` on three files; its result, and stats.json when it succeeded."""
    result = rnnlm("vocab", "--train", paths[0], "--valid", paths[1], "--test", paths[2],
                   "--vocab", tmp_path / "vocab.tsv", "--stats", tmp_path / "stats.json", *flags)
    stats = result.returncode == 0 and json.loads((tmp_path / "stats.json").read_text())
    return result, stats


@pytest.mark.parametrize(("blank_lines", "ids", "lines"), [
    ("skip", [2, 1, 0, 1, 0], 2),  # as ever: the blank lines read as nothing
    ("eos", [0, 2, 1, 0, 0, 1, 0, 0], 5),  # each one an <eos>, even the unterminated last
])
def test_blank_lines_read_as_nothing_or_an_eos_each(tmp_path, blank_lines, ids, lines):
    """WikiText's blank lines: skip (the default) or, as GluonNLP's skip_empty=False and
    awd-lstm-lm read them, one <eos> per blank line; words and line breaks are otherwise the
    same, and a file of blank lines only is still an empty split."""
    train = _write(tmp_path / "t.txt", " \n b a \n\n a \n ")
    counts, n = count_words(train, blank_lines)
    assert n == lines and counts["<eos>"] == lines and counts["a"] == 2
    vocab = build_vocab(counts)
    assert vocab.words == ["<eos>", "a", "b"]  # the same words either way
    assert encode_file(train, vocab, blank_lines).tolist() == ids
    with pytest.raises(RnnlmError, match="empty split"):
        count_words(_write(tmp_path / "blank.txt", "\n \n"), blank_lines)
    with pytest.raises(RnnlmError, match="blank_lines 'keep' is not one of skip, eos"):
        encode_file(train, vocab, "keep")


def test_blank_lines_flag_of_vocab_and_batchify(tmp_path):
    """`rnnlm vocab --blank-lines eos` counts the blank lines' <eos> in stats.json, and
    `rnnlm batchify --blank-lines eos` puts them in the array, where skip leaves both as before."""
    paths = _splits(tmp_path, " a b \n\n c \n\n", " a \n\n", " b \n")
    shapes = {}
    for setting in ("skip", "eos"):
        out = tmp_path / setting
        out.mkdir()
        result, stats = _vocab_cli(out, paths, "--blank-lines", setting)
        assert result.returncode == 0, result.stderr
        assert rnnlm("batchify", "--corpus", paths[0], "--vocab", out / "vocab.tsv",
                     "--batch-size", "1", "--out", out / "train.npy", "--blank-lines",
                     setting).returncode == 0
        shapes[setting] = np.load(out / "train.npy").shape
        assert stats["train"]["tokens"] == shapes[setting][0]
        assert (stats["train"]["lines"], stats["valid"]["tokens"]) == (
            (2, 2) if setting == "skip" else (4, 3))
    assert shapes == {"skip": (5, 1), "eos": (7, 1)}
    result, _ = _vocab_cli(tmp_path, paths, "--blank-lines", "keep")
    assert result.returncode == 2 and "invalid choice: 'keep'" in result.stderr


def test_ids_by_count_then_word_with_eos_per_line(tmp_path):
    train = _write(tmp_path / "t.txt", " b a c \n a b \n\n a \n")
    vocab = build_vocab(count_words(train)[0])
    assert vocab.words == ["<eos>", "a", "b", "c"]  # 3, 3, 2, 1: ties broken by the word
    assert vocab.counts == [3, 3, 2, 1]
    assert encode_file(train, vocab).tolist() == [2, 1, 3, 0, 1, 2, 0, 1, 0]


def test_vocab_comes_from_train_only_and_oov_reads_as_unk(tmp_path):
    paths = _splits(tmp_path, " a b <unk> \n b a \n", " a zebra \n", " yak zebra b \n")
    result, stats = _vocab_cli(tmp_path, paths)
    assert result.returncode == 0, result.stderr
    vocab = read_vocab(tmp_path / "vocab.tsv")
    assert "zebra" not in vocab.index and stats["vocab_size"] == 4 and stats["has_unk"]
    assert stats["train"] == {"tokens": 7, "lines": 2, "oov": 0, "unk": 1}
    assert stats["valid"] == {"tokens": 3, "lines": 1, "oov": 1, "unk": 1}
    assert stats["test"] == {"tokens": 4, "lines": 1, "oov": 2, "unk": 2}
    assert encode_file(paths[2], vocab).tolist()[:2] == [vocab.unk_id] * 2


def test_unk_is_added_when_valid_or_test_need_it(tmp_path):
    """A corpus without <unk> (a user's text): valid/test words not in train read as a new
    <unk>, whose training count is 0; with none, no <unk> is added."""
    paths = _splits(tmp_path, " a b \n b \n", " a \n", " yak zebra a \n")
    result, stats = _vocab_cli(tmp_path, paths)
    assert result.returncode == 0, result.stderr
    vocab = read_vocab(tmp_path / "vocab.tsv")
    assert vocab.words == ["<eos>", "b", "a", "<unk>"] and vocab.counts == [2, 2, 1, 0]
    assert stats["test"] == {"tokens": 4, "lines": 1, "oov": 2, "unk": 2}
    (tmp_path / "closed").mkdir()
    closed = _splits(tmp_path / "closed", " a b \n", " b \n", " a \n")
    result, stats = _vocab_cli(tmp_path / "closed", closed)
    assert not stats["has_unk"] and stats["vocab_size"] == 3


def test_min_count_maps_rare_words_to_unk_with_their_count(tmp_path):
    paths = _splits(tmp_path, " a a a b b c \n d a \n", " a c d e \n", " a \n")
    result, stats = _vocab_cli(tmp_path, paths, "--min-count", "2")
    assert result.returncode == 0, result.stderr
    vocab = read_vocab(tmp_path / "vocab.tsv")
    assert dict(zip(vocab.words, vocab.counts, strict=True)) == {
        "a": 4, "<eos>": 2, "b": 2, "<unk>": 2}  # c and d, once each
    assert stats["train"]["oov"] == 2 and stats["valid"] == {
        "tokens": 5, "lines": 1, "oov": 3, "unk": 3}
    assert stats["min_count"] == 2 and isinstance(stats["min_count"], int)  # as JSON: 2, not 2.0
    assert stats["max_size"] is None


@pytest.mark.parametrize("own_unk", [False, True])
def test_max_size_counts_eos_and_unk(tmp_path, own_unk):
    words = [f"w{i:02d}" for i in range(30)]
    lines = [" ".join(words[: i + 1]) for i in range(30)]  # w00 most frequent, w29 rarest
    train = "\n".join(lines) + (" <unk>\n" if own_unk else "\n")
    paths = _splits(tmp_path, train, " w00 w29 \n", " w01 \n")
    result, stats = _vocab_cli(tmp_path, paths, "--max-size", "10")
    assert result.returncode == 0, result.stderr
    vocab = read_vocab(tmp_path / "vocab.tsv")
    assert len(vocab) == 10 == stats["vocab_size"]
    assert set(vocab.words) == {"<eos>", "<unk>", *words[:8]}
    dropped = sum(30 - i for i in range(8, 30))
    assert vocab.counts[vocab.unk_id] == dropped + own_unk
    assert stats["valid"]["oov"] == 1  # w29


def test_no_max_size_or_min_count_keeps_every_training_word(tmp_path):
    """The published vocabularies (PTB 10,000, WikiText-2 33,278) are every training word."""
    counts = collections.Counter({f"w{i}": 1 + i % 3 for i in range(500)})
    counts["<unk>"] = 7
    counts["<eos>"] = 40
    vocab = build_vocab(counts)
    assert len(vocab) == 502 and vocab.counts[vocab.unk_id] == 7


def test_a_split_sharing_no_word_with_train_is_an_error(tmp_path):
    paths = _splits(tmp_path, " the cat sat \n", " le chat \n", " the \n")
    result, _ = _vocab_cli(tmp_path, paths)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rnnlm vocab: error: {paths[1]}: all 2 words are outside the vocabulary of the "
        "training split (e.g. le chat); the splits must share one language and tokenization: "
        "check the file, or how the corpus was split")
    assert not (tmp_path / "vocab.tsv").exists() and not (tmp_path / "stats.json").exists()


def test_a_min_count_that_leaves_nothing_is_an_error(tmp_path):
    paths = _splits(tmp_path, " a b \n", " a \n", " b \n")
    result, _ = _vocab_cli(tmp_path, paths, "--min-count", "5")
    assert result.returncode == 1
    assert ("min_count 5 and max_size None leave no word of the training split in the "
            "vocabulary; lower min_count or raise max_size") in result.stderr
    assert rnnlm("vocab", "--train", paths[0], "--valid", paths[1], "--test", paths[2],
                 "--vocab", "v", "--stats", "s", "--max-size", "0").returncode == 2


def test_non_utf8_and_empty_files_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b" a b \n c \xff d \n")
    with pytest.raises(RnnlmError, match=r"bad.txt: line 2 is not UTF-8 \(invalid start byte "
                                         r"at byte 9\)"):
        count_words(bad)
    with pytest.raises(RnnlmError, match=r"empty.txt: empty split"):
        count_words(_write(tmp_path / "empty.txt", "\n \n"))


def test_reading_in_blocks_gives_the_whole_stream_and_the_right_line(tmp_path, monkeypatch):
    """Blocks of any size (even shorter than a line) give the same counts and ids, and a bad
    byte is placed by its line and offset in the file."""
    text = "".join(f" w{i % 13} w{i % 7} x \n" + " \n" * (i % 3 == 0) for i in range(500))
    train = _write(tmp_path / "t.txt", text)
    whole_counts, whole_lines = count_words(train)
    whole = encode_file(train, build_vocab(whole_counts))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(text.encode() + b" fine \n caf\xe9 \n")
    for size in (5, 64):
        monkeypatch.setattr(vocab_module, "BLOCK", size)
        assert count_words(train) == (whole_counts, whole_lines)
        chunked = encode_file(train, build_vocab(whole_counts))
        assert chunked.dtype == np.int32 and np.array_equal(chunked, whole)
        with pytest.raises(RnnlmError, match=rf"bad.txt: line 669 is not UTF-8 \(invalid "
                                             rf"continuation byte at byte {len(text) + 11}\)"):
            count_words(bad)
    assert len(whole) == 2000 and whole_lines == 500


@pytest.mark.parametrize("ends", ["\r", "\r\n"], ids=["cr", "crlf"])
def test_lines_ended_by_a_lone_cr_or_crlf_read_as_unix_lines_in_blocks_of_any_size(
        tmp_path, monkeypatch, ends):
    """Classic Mac OS text (a lone \\r) was one line per split; every size of block, even one
    that ends between a \\r and its \\n, now gives the counts, ids and line numbers of the
    same text with \\n, through `rnnlm vocab` and `rnnlm batchify` too."""
    text = "".join(f" w{i % 13} w{i % 7} x \n" + " \n" * (i % 3 == 0) for i in range(300))
    unix = _write(tmp_path / "unix.txt", text)
    other = tmp_path / "other.txt"
    other.write_bytes(text.replace("\n", ends).encode())
    bad = tmp_path / "bad.txt"
    bad.write_bytes((text + " fine \n caf\xe9 \n").replace("\n", ends).encode("latin-1"))
    counts = count_words(unix)
    ids = encode_file(unix, build_vocab(counts[0]))
    for size in (4, 5, 64, vocab_module.BLOCK):
        monkeypatch.setattr(vocab_module, "BLOCK", size)
        assert count_words(other) == counts
        assert np.array_equal(encode_file(other, build_vocab(counts[0])), ids)
        with pytest.raises(RnnlmError, match=r"bad.txt: line 402 is not UTF-8"):
            count_words(bad)
    assert counts[1] == 300  # lines, not one per file
    for path in (unix, other):
        result, stats = _vocab_cli(tmp_path / path.stem, [path, path, path])
        assert result.returncode == 0, result.stderr
        assert stats["train"]["tokens"] == 1200
        batched = rnnlm("batchify", "--corpus", path, "--vocab", tmp_path / path.stem / "vocab.tsv",
                        "--batch-size", "4", "--out", tmp_path / f"{path.stem}.npy")
        assert batched.returncode == 0, batched.stderr
    assert np.array_equal(np.load(tmp_path / "unix.npy"), np.load(tmp_path / "other.npy"))


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda rows: rows + ["3\ta\t9"], "line 5 repeats the word 'a' of line 3"),
    (lambda rows: rows[:2] + ["2\tc"], "line 4 is not `id<TAB>word<TAB>count` with id 2"),
    (lambda rows: rows[:2] + ["2\tc\tmany"], "line 4 is not `id<TAB>word<TAB>count` with id 2"),
    (lambda rows: rows[:2] + ["5\tc\t1"], "line 4 is not `id<TAB>word<TAB>count` with id 2"),
    (lambda rows: ["word\tid"] + rows, "not a vocabulary TSV (header id, word, count)"),
], ids=["duplicate word", "missing count", "count not a number", "id out of order",
        "no header"])
def test_a_hand_edited_vocabulary_is_refused_by_batchify_naming_the_line(tmp_path, edit, problem):
    """A vocab.tsv edited by hand: a repeated word was a pandas InvalidIndexError in batchify."""
    corpus = _write(tmp_path / "t.txt", " a b a \n b a \n")
    rows = ["0\t<eos>\t2", "1\ta\t3", "2\tb\t2"]
    lines = edit(rows)
    vocab_path = _write(tmp_path / "vocab.tsv", "\n".join(
        lines if lines[0].startswith("word") else ["id\tword\tcount", *lines]) + "\n")
    result = rnnlm("batchify", "--corpus", corpus, "--vocab", vocab_path, "--batch-size", "2",
                   "--out", tmp_path / "t.npy")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rnnlm batchify: error: {vocab_path}: {problem}; rerun the vocab stage (delete the file "
        "and run snakemake, or rnnlm vocab) rather than editing it")
    assert not (tmp_path / "t.npy").exists()


def test_cli_on_shared_ptb(shared_ptb, tmp_path):
    paths = [shared_ptb / f"ptb.{split}.txt" for split in ("train", "valid", "test")]
    result, stats = _vocab_cli(tmp_path, paths)
    assert result.returncode == 0, result.stderr
    assert stats["vocab_size"] == 10000 and len(read_vocab(tmp_path / "vocab.tsv")) == 10000
    assert [stats[s]["tokens"] for s in ("train", "valid", "test")] == [929589, 73760, 82430]
    assert [stats[s]["oov"] for s in ("train", "valid", "test")] == [0, 0, 0]
