"""Vocabulary stage: word ids from the training split only, and statistics of every split.

The tutorial's corpus class also adds valid/test words to the vocabulary, which leaks test data on
corpora that are not pre-closed like PTB. Here valid/test words outside the training vocabulary
map to ``<unk>`` (and are counted), or are an error when there is no ``<unk>``.
"""

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlm.io import RnnlmError, atomic_path, write_json

log = logging.getLogger(__name__)

EOS = "<eos>"
UNK = "<unk>"


def read_lines(path):
    """Token lists of a corpus file, one per line, each ending in ``<eos>``; blank lines skipped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the download stage first") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise RnnlmError(f"{path}: line {line} is not UTF-8 ({err.reason} at byte {err.start}); "
                         "fix or re-download the file") from None
    lines = [line.split() + [EOS] for line in text.splitlines() if line.strip()]
    if not lines:
        raise RnnlmError(f"{path}: empty split (no tokens); check the file at the mirror")
    return lines


@dataclass
class Vocab:
    words: list
    counts: list
    index: dict = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    @property
    def eos_id(self):
        return self.index[EOS]

    @property
    def unk_id(self):
        return self.index.get(UNK)

    def unknown(self, words):
        return [w for w in dict.fromkeys(words) if w not in self.index]

    def encode(self, words, source="input"):
        """Ids of ``words``; unknown words become ``<unk>``, or an error when there is none."""
        unk = self.unk_id
        if unk is None:
            missing = self.unknown(words)
            if missing:
                raise RnnlmError(f"{source}: {len(missing)} words not in the vocabulary and no "
                                 f"{UNK} to map them to, e.g. {' '.join(missing[:5])}")
        return [self.index.get(w, unk) for w in words]


def build_vocab(train_lines):
    """Every training token, ids by descending count, ties by the word itself (deterministic)."""
    counts = collections.Counter(w for line in train_lines for w in line)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Vocab([w for w, _ in ranked], [c for _, c in ranked])


def write_vocab(vocab, path):
    pairs = zip(vocab.words, vocab.counts, strict=True)
    rows = "".join(f"{i}\t{w}\t{c}\n" for i, (w, c) in enumerate(pairs))
    with atomic_path(path) as tmp:
        tmp.write_text("id\tword\tcount\n" + rows)


def read_vocab(path):
    path = Path(path)
    try:
        rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the vocab stage first") from None
    if not rows or any(len(r) != 3 or r[0] != str(i) for i, r in enumerate(rows)):
        raise RnnlmError(f"{path}: not a vocabulary TSV (id, word, count); rerun the vocab stage")
    return Vocab([r[1] for r in rows], [int(r[2]) for r in rows])


def encode_file(path, vocab):
    """The id stream of a corpus file as int32."""
    words = [w for line in read_lines(path) for w in line]
    return np.asarray(vocab.encode(words, source=str(path)), dtype=np.int32)


def split_stats(lines, vocab, source):
    """Token, line and out-of-vocabulary counts; unknown words without ``<unk>`` are an error."""
    words = [w for line in lines for w in line]
    vocab.encode(words, source=source)
    oov = sum(w not in vocab.index for w in words)
    return {"tokens": len(words), "lines": len(lines), "oov": oov}


def build_vocab_files(train, valid, test, vocab_path, stats_path):
    """The vocab stage: ``vocab.tsv`` from train, ``stats.json`` over all three splits."""
    paths = {"train": train, "valid": valid, "test": test}
    splits = {name: read_lines(path) for name, path in paths.items()}
    vocab = build_vocab(splits["train"])
    stats = {"vocab_size": len(vocab), "has_unk": vocab.unk_id is not None}
    for name, lines in splits.items():
        stats[name] = split_stats(lines, vocab, source=str(paths[name]))
    write_vocab(vocab, vocab_path)
    write_json(stats_path, stats)
    log.info("vocabulary of %d words; tokens train %d, valid %d, test %d", len(vocab),
             stats["train"]["tokens"], stats["valid"]["tokens"], stats["test"]["tokens"])
    return vocab, stats
