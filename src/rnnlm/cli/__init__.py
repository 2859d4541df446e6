"""`rnnlm <stage>`: one subcommand per pipeline stage, the entry point every Snakemake rule calls.

Flags reuse the config schema's key names. Errors the user can fix (RnnlmError, and a path that
the system refuses: a directory given for a file, no such file, no permission, a full disk) print
one line and exit 1 (128 + the signal when a stopped run saved its checkpoint); anything else is
a bug and keeps its traceback. One module per family of subcommands: data, training, trained
(evaluate, cache, predict, generate), results (tables and plots), tune, export (and score); args
what they share.
"""

import argparse
import logging
import sys

from rnnlm.cli import data, export, results, trained, training, tune
from rnnlm.io import RnnlmError, log_to_stderr

FIXES = {  # what to do about an OSError on a path the user gave
    IsADirectoryError: "a directory where a file is expected; pass the file's path",
    NotADirectoryError: "a file where a directory is expected; check the path",
    FileNotFoundError: "no such file or directory; check the path, or run the stage that "
                       "writes it",
    PermissionError: "permission denied; fix its permissions or choose another path",
}


def build_parser():
    parser = argparse.ArgumentParser(prog="rnnlm", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for family in (data, training, trained, results, export, tune):
        family.add_commands(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.func(args)
    except RnnlmError as err:
        print(f"rnnlm {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        if err.filename is None:
            raise
        problem = FIXES.get(type(err), err.strerror)
        print(f"rnnlm {args.command}: error: {err.filename}: {problem}", file=sys.stderr)
        return 1
    return 0
