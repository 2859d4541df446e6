"""Batchify stage: time-major columns of contiguous text, remainder dropped as the tutorial does."""

import hashlib

import numpy as np
import pytest
from conftest import rnnlm
from hypothesis import given
from hypothesis import strategies as st

from rnnlm.batchify import batchify, batchify_file
from rnnlm.cli import main
from rnnlm.device import load_array
from rnnlm.io import Damaged, RnnlmError
from rnnlm.mx import mxnet as mx


@given(st.lists(st.integers(0, 10_000), min_size=2, max_size=400), st.integers(1, 20))
def test_columns_in_order_are_the_stream(ids, batch_size):
    if len(ids) < 2 * batch_size:
        with pytest.raises(RnnlmError, match=f"need at least {2 * batch_size}"):
            batchify(ids, batch_size)
        return
    batches = batchify(ids, batch_size)
    steps = len(ids) // batch_size
    assert batches.shape == (steps, batch_size) and batches.dtype == np.int32
    assert batches.T.reshape(-1).tolist() == ids[: steps * batch_size]


def test_cli_writes_npy_on_shared_ptb(shared_ptb, tmp_path):
    vocab_args = ["vocab", "--vocab", str(tmp_path / "v.tsv"), "--stats", str(tmp_path / "s.json")]
    for split in ("train", "valid", "test"):
        vocab_args += [f"--{split}", str(shared_ptb / f"ptb.{split}.txt")]
    assert main(vocab_args) == 0
    out = tmp_path / "train.b32.npy"
    assert main(["batchify", "--corpus", str(shared_ptb / "ptb.train.txt"), "--vocab",
                 str(tmp_path / "v.tsv"), "--batch-size", "32", "--out", str(out)]) == 0
    batches = np.load(out)
    assert batches.shape == (29049, 32) and batches.dtype == np.int32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "train.b32.npy",
                                                          "train.b32.npy.sha256", "v.tsv"]
    digest = hashlib.sha256(out.read_bytes()).hexdigest()  # sha256sum's line: sha256sum -c reads it
    assert (tmp_path / "train.b32.npy.sha256").read_text() == f"{digest}  train.b32.npy\n"


def test_cli_reads_words_outside_the_vocabulary_as_unk(tmp_path):
    (tmp_path / "v.tsv").write_text("id\tword\tcount\n0\t<eos>\t3\n1\ta\t2\n2\t<unk>\t1\n")
    (tmp_path / "t.txt").write_text(" a zebra \n a yak \n")
    result = rnnlm("batchify", "--corpus", tmp_path / "t.txt", "--vocab", tmp_path / "v.tsv",
                   "--batch-size", "2", "--out", tmp_path / "t.npy")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "t.npy").T.tolist() == [[1, 2, 0], [1, 2, 0]]


def test_cli_without_unk_names_the_unknown_words(tmp_path):
    (tmp_path / "v.tsv").write_text("id\tword\tcount\n0\t<eos>\t3\n1\ta\t2\n")
    (tmp_path / "t.txt").write_text(" a zebra \n a yak \n")
    result = rnnlm("batchify", "--corpus", tmp_path / "t.txt", "--vocab", tmp_path / "v.tsv",
                   "--batch-size", "2", "--out", tmp_path / "t.npy")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rnnlm batchify: error: {tmp_path / 't.txt'}: words not in the vocabulary and no <unk> "
        "to read them as, e.g. zebra yak; use the vocabulary built from this corpus")
    assert not (tmp_path / "t.npy").exists()


def test_readers_check_the_digest_batchify_records(tmp_path):
    (tmp_path / "v.tsv").write_text("id\tword\tcount\n0\t<eos>\t3\n1\ta\t2\n2\tb\t1\n")
    (tmp_path / "t.txt").write_text("a b a\na a b\n" * 20)
    out = tmp_path / "t.b2.npy"
    batchify_file(tmp_path / "t.txt", tmp_path / "v.tsv", 2, out)
    record = tmp_path / "t.b2.npy.sha256"
    assert record.read_text() == f"{hashlib.sha256(out.read_bytes()).hexdigest()}  t.b2.npy\n"
    assert load_array(out, 3, [mx.cpu()])[0].shape == (80, 2)
    data = bytearray(out.read_bytes())
    data[-4] = (data[-4] + 1) % 3  # another id of the vocabulary: np.load sees no harm
    out.write_bytes(bytes(data))
    with pytest.raises(Damaged) as err:
        load_array(out, 3, [mx.cpu()])
    assert str(err.value) == (
        f"{out} is damaged (sha256 {hashlib.sha256(bytes(data)).hexdigest()}, t.b2.npy.sha256 "
        f"records {record.read_text().split()[0]}): delete it and run snakemake again to "
        "batchify it anew (what reads it then reruns too)")
    record.unlink()  # an array batchified before digests were recorded reads unchecked
    assert load_array(out, 3, [mx.cpu()])[0].shape == (80, 2)
    batchify_file(tmp_path / "t.txt", tmp_path / "v.tsv", 2, out)  # batchified anew: whole again
    assert load_array(out, 3, [mx.cpu()])[0].shape == (80, 2)
