"""`rnnlm halve|tune-table`: a tune's rung decided from its trials' run folders, and a finished
tune's table and plot (rnnlm.tune)."""

import argparse
from pathlib import Path


def _trial(text):
    """N=FOLDER as (N, FOLDER)."""
    trial, _, folder = text.partition("=")
    if not trial.isdigit() or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not TRIAL=RUN_FOLDER")
    return int(trial), folder


def _halve(args):
    from rnnlm.tune.halving import write_rung

    write_rung(args.out, tune=args.tune, mode=args.mode, rung=args.rung - 1, rungs=args.rungs,
               eta=args.eta, trials=dict(args.trials), keys=args.keys)


def _tune_table(args):
    from rnnlm.tune_report import write_tune

    write_tune(args.rungs, args.keys, args.csv, args.md, args.html, args.plot)


def add_commands(sub):
    p = sub.add_parser("halve", help="a tune's rung for one mode: which trials go on",
                       description="Reads each trial's summary.json (best validation "
                       "perplexity; a diverged trial ranks last) and writes the rung's record: "
                       "every trial's point and perplexity and the best ceil(n / eta) that go "
                       "on, or on the last rung the mode's choice.")
    p.add_argument("--tune", required=True)
    p.add_argument("--mode", required=True)
    p.add_argument("--rung", type=int, required=True, help="1-based")
    p.add_argument("--rungs", type=int, nargs="+", required=True, help="epochs of every rung")
    p.add_argument("--eta", type=int, required=True)
    p.add_argument("--keys", nargs="+", required=True, help="the space's experiment keys")
    p.add_argument("--trials", type=_trial, nargs="+", required=True,
                   help="TRIAL=RUN_FOLDER of every trial of the rung")
    p.add_argument("--out", type=Path, required=True, help="results/tunes/TUNE/MODE/rungK.json")
    p.set_defaults(func=_halve)
    p = sub.add_parser("tune-table", help="a finished tune's table and learning-curve plot")
    p.add_argument("--rungs", type=Path, nargs="+", required=True,
                   help="every rung file of every mode (rnnlm halve's)")
    p.add_argument("--keys", nargs="+", required=True, help="the space's experiment keys")
    for name in ("csv", "md", "html", "plot"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.set_defaults(func=_tune_table)
