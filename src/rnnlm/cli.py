"""`rnnlm <stage>`: one subcommand per pipeline stage, the entry point every Snakemake rule calls.

Flags reuse the config schema's key names. Errors the user can fix (RnnlmError) print one line
and exit 1; anything else is a bug and keeps its traceback.
"""

import argparse
import logging
import sys
from pathlib import Path

from rnnlm.io import RnnlmError

log = logging.getLogger("rnnlm")


def _download(args):
    from rnnlm.data import SPLITS, download

    sha256 = dict(zip(SPLITS, args.sha256, strict=True)) if args.sha256 else None
    download(args.url, args.out_dir, sha256=sha256, retries=args.retries)


def _add_download(sub):
    p = sub.add_parser("download", help="fetch and verify ptb.{train,valid,test}.txt")
    p.add_argument("--url", required=True,
                   help="base location: http(s)://, file:// or a directory holding the three files")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--sha256", nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                   help="expected SHA-256 of each split (default: the published PTB digests)")
    p.add_argument("--retries", type=int, default=3, help="attempts per file on network errors")
    p.set_defaults(func=_download)


def _vocab(args):
    from rnnlm.vocab import build_vocab_files

    build_vocab_files(args.train, args.valid, args.test, args.vocab, args.stats)


def _add_vocab(sub):
    p = sub.add_parser("vocab", help="vocabulary from the training split, and corpus statistics")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--valid", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True, help="output TSV: id, word, count")
    p.add_argument("--stats", type=Path, required=True, help="output JSON of corpus statistics")
    p.set_defaults(func=_vocab)


def _batchify(args):
    from rnnlm.batchify import batchify_file

    batchify_file(args.corpus, args.vocab, args.batch_size, args.out)


def _add_batchify(sub):
    p = sub.add_parser("batchify", help="id stream of a split as an int32 (steps, batch) array")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="output .npy")
    p.set_defaults(func=_batchify)


def build_parser():
    parser = argparse.ArgumentParser(prog="rnnlm", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_download, _add_vocab, _add_batchify):
        add(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except RnnlmError as err:
        print(f"rnnlm {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
