"""Vocabulary stage: word ids from the training split only, and statistics of every split.

The tutorial's corpus class also adds valid/test words to the vocabulary, which leaks test data on
corpora that are not pre-closed like PTB. Here words outside the vocabulary (rarer than
``min_count``, beyond ``max_size``, or in valid/test only) read as ``<unk>``, which is added when
the training text has none. Files are read a block of lines at a time and each block's words are
hashed by pandas: WikiText-103's 103 million tokens never become one Python list.
"""

import collections
import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlm.io import BLANK_LINES, RnnlmError, atomic_path, write_json

log = logging.getLogger(__name__)

EOS = "<eos>"
UNK = "<unk>"
BLOCK = 1 << 25  # bytes read at a time (whole lines): a few million tokens, a few hundred MB
LINE_BREAK = re.compile(r"\r\n?|\n")  # Unix, Windows and classic Mac OS (CR alone) text


def line_breaks(data, end=None):
    """How many lines of ``data`` (bytes) end before ``end``: at \\n, \\r\\n or a lone \\r."""
    return data.count(b"\n", 0, end) + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end)


def read_blocks(path):
    """The text of ``path`` in blocks of whole lines, decoded; a missing file and bytes that are
    not UTF-8 are errors naming the file (and the line). A block never ends between the \\r
    and the \\n of one line break."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the download stage first") from None
    with f:
        pending, offset, line = b"", 0, 1
        for data in iter(lambda: f.read(BLOCK), b""):
            pending += data
            end = len(pending) - pending.endswith(b"\r")  # its \n may be in the next read
            cut = max(pending.rfind(b"\n", 0, end), pending.rfind(b"\r", 0, end)) + 1
            if cut:
                yield _decode(path, pending[:cut], offset, line)
                offset, line = offset + cut, line + line_breaks(pending, cut)
                pending = pending[cut:]
        if pending:
            yield _decode(path, pending, offset, line)


def _decode(path, data, offset, line):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line += line_breaks(data, err.start)
        raise RnnlmError(f"{path}: line {line} is not UTF-8 ({err.reason} at byte "
                         f"{offset + err.start}); fix or re-download the file") from None


def iter_tokens(path, eos=True, blank_lines="skip"):
    """Per block of ``path``: its words as an object array (what pandas hashes in C), with
    ``<eos>`` after each line when ``eos`` (without, counting splits each block at once, a fifth
    faster), and the number of lines that end with one. ``blank_lines`` "skip" gives a blank
    line nothing (the default); "eos" gives it an ``<eos>`` of its own, as the PyTorch example,
    awd-lstm-lm and GluonNLP (skip_empty=False) read WikiText. A split without a word is an
    error."""
    if blank_lines not in BLANK_LINES:
        raise RnnlmError(f"blank_lines {blank_lines!r} is not one of {', '.join(BLANK_LINES)}")
    keep_blank, empty = blank_lines == "eos", True
    for text in read_blocks(path):
        pieces = LINE_BREAK.split(text) if "\r" in text else text.split("\n")
        if not pieces[-1]:
            pieces.pop()  # what follows the block's last line break is no line
        if eos:
            words, lines = [], 0
            for line in pieces:
                line_words = line.split()
                if line_words or keep_blank:
                    words += line_words
                    words.append(EOS)
                    lines += 1
        else:
            words = text.split()
            lines = len(pieces) if keep_blank else sum(
                1 for line in pieces if line and not line.isspace())
        if lines:
            empty = empty and len(words) == (lines if eos else 0)
            yield np.array(words, dtype=object), lines
    if empty:
        raise RnnlmError(f"{path}: empty split (no tokens); check the file at the mirror")


def count_words(path, blank_lines="skip"):
    """Token counts of a split (one ``<eos>`` per line among them, blank lines by
    ``blank_lines``) and its number of such lines; each block's words are counted by pandas,
    then merged into running totals."""
    seen, totals, lines = pd.Index([], dtype=object), np.zeros(0, dtype=np.int64), 0
    for words, block_lines in iter_tokens(path, eos=False, blank_lines=blank_lines):
        codes, uniques = pd.factorize(words)
        slots = seen.get_indexer(uniques)
        new = slots < 0
        if new.any():
            slots[new] = np.arange(len(seen), len(seen) + new.sum())
            seen = pd.Index(np.concatenate([seen.to_numpy(), uniques[new]]), dtype=object)
            totals = np.concatenate([totals, np.zeros(new.sum(), dtype=np.int64)])
        totals[slots] += np.bincount(codes, minlength=len(uniques))
        lines += block_lines
    counts = collections.Counter(dict(zip(seen, totals.tolist(), strict=True)))
    counts[EOS] += lines
    return counts, lines


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

    @functools.cached_property
    def lookup(self):
        return pd.Index(self.words, dtype=object)

    def ids(self, tokens, source="input"):
        """int32 ids of ``tokens`` (an object array); unknown words are ``<unk>``, or an error
        when there is none. Each distinct word is looked up once."""
        codes, uniques = pd.factorize(tokens)
        ids = self.lookup.get_indexer(uniques)
        unknown = ids < 0
        if unknown.any():
            if self.unk_id is None:
                raise RnnlmError(f"{source}: words not in the vocabulary and no {UNK} to read "
                                 f"them as, e.g. {' '.join(uniques[unknown][:5])}; use the "
                                 "vocabulary built from this corpus")
            ids[unknown] = self.unk_id
        return ids[codes].astype(np.int32)


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
    """The vocabulary ``write_vocab`` wrote, checked row by row: a hand-edited file that repeats
    a word, or loses an id or a count, is refused naming the line."""
    path = Path(path)
    try:
        lines = path.read_text().split("\n")
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the vocab stage first") from None
    if lines[-1] == "":
        lines.pop()

    def refuse(problem):
        return RnnlmError(f"{path}: {problem}; rerun the vocab stage (delete the file and run "
                          "snakemake, or rnnlm vocab) rather than editing it")

    if not lines or lines[0] != "id\tword\tcount":
        raise refuse("not a vocabulary TSV (header id, word, count)")
    words, counts, first_line = [], [], {}
    for number, line in enumerate(lines[1:], start=2):
        row = line.split("\t")
        if len(row) != 3 or row[0] != str(number - 2) or not row[2].isdigit() or not row[1]:
            raise refuse(f"line {number} is not `id<TAB>word<TAB>count` with id {number - 2}")
        if row[1] in first_line:
            raise refuse(f"line {number} repeats the word {row[1]!r} of line {first_line[row[1]]}")
        first_line[row[1]] = number
        words.append(row[1])
        counts.append(int(row[2]))
    return Vocab(words, counts)


def encode_file(path, vocab, blank_lines="skip"):
    """The id stream of a corpus file as int32, an ``<eos>`` after each line (a blank one too
    when ``blank_lines`` is "eos")."""
    return np.concatenate([vocab.ids(tokens, source=str(path))
                           for tokens, _ in iter_tokens(path, blank_lines=blank_lines)])


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


def build_vocab_files(train, valid, test, vocab_path, stats_path, max_size=None, min_count=1,
                      blank_lines="skip"):
    """The vocab stage: ``vocab.tsv`` from train, ``stats.json`` over all three splits."""
    paths = {"train": train, "valid": valid, "test": test}
    counted = {name: count_words(path, blank_lines) for name, path in paths.items()}
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
