"""benchmarks/data_stages.py on a tiny corpus: it generates what it says, runs the real stages
and prints one JSON line per measurement (its figures are in benchmarks/README.md, never
asserted here)."""

import json
import subprocess
import sys

import numpy as np
from conftest import REPO

from rnnlm.vocab import read_vocab


def test_the_script_generates_the_corpus_it_describes_and_times_each_stage(tmp_path):
    folder = tmp_path / "corpus"
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "data_stages.py"), "--tokens", "20000",
         "--vocab", "300", "--folder", str(folder), "--batch-size", "8", "--eval-batch-size", "4"],
        capture_output=True, text=True, check=True, timeout=300)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["what"] for line in lines] == [
        "generate", "vocab", "batchify train", "batchify valid", "batchify test", "data stages"]
    assert all(line["seconds"] >= 0 and line["peak_rss_mb"] > 0 for line in lines[1:])
    vocab = read_vocab(folder / "vocab.tsv")
    assert len(vocab) == 300 == lines[1]["vocab_size"] and vocab.unk_id is not None
    tokens = lines[1]["tokens"]
    assert tokens["train"] > 20000 + 299  # every word once, then the draws, and the <eos>s
    assert lines[1]["oov"]["train"] == 0 and lines[1]["oov"]["valid"] > 0
    for line, split, batch in zip(lines[2:5], ("train", "valid", "test"), (8, 4, 4), strict=True):
        assert line["shape"] == [tokens[split] // batch, batch]
        assert np.load(folder / f"{split}.b{batch}.npy").shape == tuple(line["shape"])
    assert lines[5]["seconds"] >= sum(line["seconds"] for line in lines[1:5]) - 0.2
    blank = (folder / "train.txt").read_text().splitlines()[1]
    assert blank.strip() == ""  # paragraphs with blank lines between, as in WikiText's files
