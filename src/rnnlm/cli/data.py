"""`rnnlm download|vocab|batchify`: a corpus fetched and checked, its vocabulary, its arrays."""

import argparse
from pathlib import Path

from rnnlm.cli.args import count
from rnnlm.io import BLANK_LINES


def _download(args):
    from rnnlm.data import SPLITS, Source, download

    files = dict(zip(SPLITS, args.files, strict=True)) if args.files else None
    source = Source(args.corpus, args.url, files=files, archive=args.archive, file=args.file,
                    split=tuple(args.split), digests=dict(args.digest))
    download(source, args.out_dir, retries=args.retries)


def _digest(text):
    """KEY=ALGO:HEX as (key, "algo:hex"); the digest itself is checked with the corpus."""
    key, _, digest = text.partition("=")
    if key not in ("archive", "file", "train", "valid", "test") or not digest:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=ALGO:HEX with KEY one of "
                                         "archive, file, train, valid, test")
    return key, digest


def _add_download(sub):
    p = sub.add_parser("download", help="fetch a corpus, verify it, write train/valid/test.txt",
                       description="Fetch a corpus's three splits (three files, three members "
                       "of an archive, or one file to split) into OUT_DIR as train.txt, "
                       "valid.txt and test.txt, each digest given checked before any is "
                       "written.")
    p.add_argument("--corpus", required=True, help="the corpus's name, for messages")
    p.add_argument("--url", required=True,
                   help="base location: http(s)://, file:// or a directory")
    shape = p.add_mutually_exclusive_group(required=True)
    shape.add_argument("--files", nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                       help="the three splits' names under --url (or in --archive)")
    shape.add_argument("--file", help="one text under --url, cut into three by --split")
    p.add_argument("--archive", help="a .zip or .tar.gz under --url whose members --files are")
    p.add_argument("--split", nargs=2, type=float, default=(0.1, 0.1), metavar=("VALID", "TEST"),
                   help="with --file: the last TEST fraction of its non-blank lines is test, the "
                        "VALID fraction before them valid, the rest train (default 0.1 0.1)")
    p.add_argument("--digest", nargs="+", type=_digest, action="extend", default=[],
                   metavar="KEY=ALGO:HEX",
                   help="expected digest (ALGO sha256 or sha1) of the archive, the file, or a "
                        "split (train, valid, test); none: the files are taken as they are")
    p.add_argument("--out-dir", type=Path, required=True, help="e.g. resources/NAME")
    p.add_argument("--retries", type=count, default=3,
                   help="attempts per file on network errors, 1 s, 2 s, 4 s ... apart")
    p.set_defaults(func=_download)


def _vocab(args):
    from rnnlm.vocab import build_vocab_files

    build_vocab_files(args.train, args.valid, args.test, args.vocab, args.stats,
                      max_size=args.max_size, min_count=args.min_count,
                      blank_lines=args.blank_lines)


def _add_vocab(sub):
    p = sub.add_parser("vocab", help="vocabulary from the training split, and corpus statistics")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--valid", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True, help="output TSV: id, word, count")
    p.add_argument("--stats", type=Path, required=True, help="output JSON of corpus statistics")
    p.add_argument("--max-size", type=count,
                   help="at most this many words, <eos> and <unk> included: the most frequent "
                        "(default: every word of the training split)")
    p.add_argument("--min-count", type=count, default=1,
                   help="keep only words seen this often in the training split (default 1)")
    _add_blank_lines(p)
    p.set_defaults(func=_vocab)


def _add_blank_lines(p):
    p.add_argument("--blank-lines", choices=BLANK_LINES, default="skip",
                   help="a blank line reads as nothing (skip, the default) or as an <eos> of its "
                        "own (eos: WikiText as GluonNLP and awd-lstm-lm read it); vocab and "
                        "batchify must agree")


def _batchify(args):
    from rnnlm.batchify import batchify_file

    batchify_file(args.corpus, args.vocab, args.batch_size, args.out, args.blank_lines)


def _add_batchify(sub):
    p = sub.add_parser("batchify", help="id stream of a split as an int32 (steps, batch) array")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="output .npy")
    _add_blank_lines(p)
    p.set_defaults(func=_batchify)


def add_commands(sub):
    for add in (_add_download, _add_vocab, _add_batchify):
        add(sub)
