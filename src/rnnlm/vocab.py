"""Vocabulary stage: word ids from the training split only, and statistics of every split.

The tutorial's corpus class also adds valid/test words to the vocabulary, which leaks test data on
corpora that are not pre-closed like PTB. Here words outside the vocabulary (rarer than
``min_count``, beyond ``max_size``, or in valid/test only) read as ``<unk>``, which is added when
the training text has none. Files are streamed line by line: WikiText-103's 103 million tokens
never become one Python list.
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
CHUNK = 1 << 20  # tokens encoded per numpy call


def iter_lines(path):
    """The words of each non-blank line (lines end at ``\\n``); a missing file, bytes that are
    not UTF-8 and a file without a word are errors naming the file."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the download stage first") from None
    with f:
        offset, any_words = 0, False
        for number, raw in enumerate(f, 1):
            try:
                words = raw.decode("utf-8").split()
            except UnicodeDecodeError as err:
                raise RnnlmError(f"{path}: line {number} is not UTF-8 ({err.reason} at byte "
                                 f"{offset + err.start}); fix or re-download the file") from None
            offset += len(raw)
            if words:
                any_words = True
                yield words
    if not any_words:
        raise RnnlmError(f"{path}: empty split (no tokens); check the file at the mirror")


def count_words(path):
    """Token counts of a split, one ``<eos>`` per line included, and its number of lines."""
    counts, lines = collections.Counter(), 0
    for words in iter_lines(path):
        counts.update(words)
        lines += 1
    counts[EOS] += lines
    return counts, lines


class _Ids(dict):
    """word -> id, where a word outside the vocabulary is ``<unk>``'s id, or a KeyError."""

    unk = None

    def __missing__(self, word):
        if self.unk is None:
            raise KeyError(word)
        return self.unk


@dataclass
class Vocab:
    words: list
    counts: list
    index: dict = field(init=False, repr=False)

    def __post_init__(self):
        self.index = _Ids((word, i) for i, word in enumerate(self.words))
        self.index.unk = self.index.get(UNK)

    def __len__(self):
        return len(self.words)

    @property
    def eos_id(self):
        return self.index[EOS]

    @property
    def unk_id(self):
        return self.index.unk

    def unknown(self, words):
        return [w for w in dict.fromkeys(words) if w not in self.index]

    def ids(self, words, source="input"):
        """int32 ids of ``words``; unknown words are ``<unk>``, or an error when there is none."""
        try:
            return np.fromiter(map(self.index.__getitem__, words), np.int32, len(words))
        except KeyError:
            missing = self.unknown(words)
            raise RnnlmError(f"{source}: words not in the vocabulary and no {UNK} to read them "
                             f"as, e.g. {' '.join(missing[:5])}; use the vocabulary built from "
                             "this corpus") from None


def build_vocab(train_counts, max_size=None, min_count=1, others=()):
    """The training words kept by ``min_count`` and ``max_size`` (which counts ``<eos>`` and
    ``<unk>``); ids by descending count, ties by the word. ``<unk>`` stands for the words left
    out (its count is theirs plus its own), and is added when some are, or when a split of
    ``others`` (Counters) has words outside the vocabulary and training has no ``<unk>``."""
    ranked = sorted((w for w in train_counts if w != UNK), key=lambda w: (-train_counts[w], w))
    kept = [w for w in ranked if train_counts[w] >= min_count or w == EOS]
    kept_set = set(kept)
    need_unk = (UNK in train_counts or len(kept) < len(ranked)
                or any(w not in kept_set for c in others for w in c))
    if max_size is not None and len(kept) + need_unk > max_size:
        kept = [EOS, *[w for w in kept if w != EOS][: max_size - 2]]
        need_unk = True
    if len(kept) < 2:
        raise RnnlmError(f"min_count {min_count} and max_size {max_size} leave no word of the "
                         "training split in the vocabulary; lower min_count or raise max_size")
    counts = {w: train_counts[w] for w in kept}
    if need_unk:
        kept_set = set(kept)
        counts[UNK] = sum(c for w, c in train_counts.items() if w not in kept_set)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return Vocab(words, [counts[w] for w in words])


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
    """The id stream of a corpus file as int32, an ``<eos>`` after each line; built in chunks."""
    chunks, words = [], []
    for line in iter_lines(path):
        words += line
        words.append(EOS)
        if len(words) >= CHUNK:
            chunks.append(vocab.ids(words, source=str(path)))
            words = []
    chunks.append(vocab.ids(words, source=str(path)))
    return np.concatenate(chunks)


def split_stats(counts, lines, vocab, source):
    """Tokens (``<eos>`` included), lines, ``oov``: the tokens outside the vocabulary, which read
    as ``<unk>``, and ``unk``: every token read as ``<unk>`` (``oov`` and the text's own
    ``<unk>``). A split that shares no word with the vocabulary is an error."""
    tokens = sum(counts.values())
    oov = sum(c for w, c in counts.items() if w not in vocab.index)
    words = tokens - counts[EOS]
    if words and oov + counts[UNK] == words:
        unknown = [w for w, _ in counts.most_common(6) if w not in vocab.index][:5]
        raise RnnlmError(f"{source}: all {words} words are outside the vocabulary of the training "
                         f"split (e.g. {' '.join(unknown)}); the splits must share one language "
                         "and tokenization: check the file, or how the corpus was split")
    return {"tokens": tokens, "lines": lines, "oov": oov, "unk": oov + counts[UNK]}


def build_vocab_files(train, valid, test, vocab_path, stats_path, max_size=None, min_count=1):
    """The vocab stage: ``vocab.tsv`` from train, ``stats.json`` over all three splits."""
    paths = {"train": train, "valid": valid, "test": test}
    counted = {name: count_words(path) for name, path in paths.items()}
    others = [counted[name][0] for name in ("valid", "test")]
    vocab = build_vocab(counted["train"][0], max_size, min_count, others)
    stats = {"vocab_size": len(vocab), "has_unk": vocab.unk_id is not None,
             "max_size": max_size, "min_count": min_count}
    for name, (counts, lines) in counted.items():
        stats[name] = split_stats(counts, lines, vocab, source=str(paths[name]))
    write_vocab(vocab, vocab_path)
    write_json(stats_path, stats)
    log.info("vocabulary of %d words; tokens train %d, valid %d, test %d", len(vocab),
             stats["train"]["tokens"], stats["valid"]["tokens"], stats["test"]["tokens"])
    return vocab, stats
