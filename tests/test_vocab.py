"""Vocabulary stage: train-only vocabulary, deterministic ids, <unk> mapping, statistics."""

import json

import pytest

from rnnlm.cli import main
from rnnlm.io import RnnlmError
from rnnlm.vocab import build_vocab, build_vocab_files, encode_file, read_lines, read_vocab


def _write(path, text):
    path.write_text(text)
    return path


def test_ids_by_count_then_word_with_eos_per_line(tmp_path):
    train = _write(tmp_path / "t.txt", " b a c \n a b \n\n a \n")
    vocab = build_vocab(read_lines(train))
    assert vocab.words == ["<eos>", "a", "b", "c"]  # 3, 3, 2, 1: ties broken by the word
    assert vocab.counts == [3, 3, 2, 1]
    assert encode_file(train, vocab).tolist() == [2, 1, 3, 0, 1, 2, 0, 1, 0]


def test_vocab_comes_from_train_only_and_oov_maps_to_unk(tmp_path):
    train = _write(tmp_path / "train.txt", " a b <unk> \n b a \n")
    valid = _write(tmp_path / "valid.txt", " a zebra \n")
    test = _write(tmp_path / "test.txt", " yak zebra b \n")
    vocab, stats = build_vocab_files(train, valid, test, tmp_path / "v.tsv", tmp_path / "s.json")
    assert "zebra" not in vocab.index
    assert stats["valid"] == {"tokens": 3, "lines": 1, "oov": 1}
    assert stats["test"] == {"tokens": 4, "lines": 1, "oov": 2}
    assert json.loads((tmp_path / "s.json").read_text()) == stats
    assert read_vocab(tmp_path / "v.tsv").words == vocab.words
    assert encode_file(test, vocab).tolist()[:2] == [vocab.unk_id] * 2


def test_unknown_words_without_unk_is_an_error_naming_them(tmp_path):
    train = _write(tmp_path / "train.txt", " a b \n")
    valid = _write(tmp_path / "valid.txt", " a \n")
    test = _write(tmp_path / "test.txt", " yak zebra a \n")
    with pytest.raises(RnnlmError, match=r"test.txt: 2 words not in the vocabulary.*yak zebra"):
        build_vocab_files(train, valid, test, tmp_path / "v.tsv", tmp_path / "s.json")
    assert not (tmp_path / "v.tsv").exists()


def test_non_utf8_and_empty_files_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b" a b \n c \xff d \n")
    with pytest.raises(RnnlmError, match=r"bad.txt: line 2 is not UTF-8"):
        read_lines(bad)
    with pytest.raises(RnnlmError, match=r"empty.txt: empty split"):
        read_lines(_write(tmp_path / "empty.txt", "\n \n"))


def test_cli_on_shared_ptb(shared_ptb, tmp_path):
    out = tmp_path / "data"
    args = ["vocab", "--vocab", str(out / "vocab.tsv"), "--stats", str(out / "stats.json")]
    for split in ("train", "valid", "test"):
        args += [f"--{split}", str(shared_ptb / f"ptb.{split}.txt")]
    assert main(args) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["vocab_size"] == 10000
    assert [stats[s]["tokens"] for s in ("train", "valid", "test")] == [929589, 73760, 82430]
    assert [stats[s]["oov"] for s in ("train", "valid", "test")] == [0, 0, 0]
    assert len(read_vocab(out / "vocab.tsv")) == 10000
