"""`rnnlm table|compare|sweep|provenance|plots|dynamic-plot|compare-predictions`: the
subcommands that read finished run folders and write the tables and plots of the results."""

import argparse
from pathlib import Path

from rnnlm.cli.args import positive


def _compare_predictions(args):
    from rnnlm.tables.predictions import write_predictions_table

    write_predictions_table(args.inputs, args.md, args.html)


def _add_compare_predictions(sub):
    p = sub.add_parser("compare-predictions",
                       help="one table per prompt: the runs' next words side by side")
    p.add_argument("--inputs", type=Path, nargs="+", required=True,
                   help="predictions.json files written by rnnlm predict --out")
    p.add_argument("--md", type=Path, required=True,
                   help="output Markdown, e.g. results/predictions.md")
    p.add_argument("--html", type=Path, required=True,
                   help="output HTML of the same, for the report")
    p.set_defaults(func=_compare_predictions)


def _pair(kind, convert):
    """A parser of NAME=VALUE arguments (an experiment and its corpus, its published ppl)."""
    def parse(text):
        name, _, value = text.partition("=")
        try:
            if name and value:
                return name, convert(value)
        except (ValueError, argparse.ArgumentTypeError):
            pass
        raise argparse.ArgumentTypeError(f"{text!r} is not EXPERIMENT={kind}")

    return parse


def _add_runs(p, corpus=True):
    p.add_argument("--runs", type=Path, nargs="+", required=True, metavar="DIR",
                   help="run folders RESULTS/EXPERIMENT/MODE/seedN (a sweep point's EXPERIMENT "
                        "is SWEEP/KEY~VALUE/...) holding train's and evaluate's files")
    if corpus:
        p.add_argument("--corpus", nargs="*", type=_pair("CORPUS", str), default=[],
                       metavar="EXPERIMENT=CORPUS",
                       help="corpus of an experiment or a sweep (default: ptb); experiments "
                            "compare only on one corpus")


def _add_caches(p):
    p.add_argument("--caches", type=Path, nargs="*", default=[], metavar="FILE",
                   help="cache.json files of the cache stage, each in a run folder of --runs: "
                        "their test perplexity with the cache, theta and lambda")
    p.add_argument("--dynamics", type=Path, nargs="*", default=[], metavar="FILE",
                   help="dynamic_eval.json files of the dynamic_eval stage, each in a run folder "
                        "of --runs: their test perplexity with dynamic evaluation, lr and decay")


def _add_tuned(p):
    p.add_argument("--tuned", nargs="*", default=[], metavar="TUNE",
                   help="experiments that are tunes' final runs: each mode at its own choice")


def _add_formats(p, table, md=True):
    p.add_argument("--csv", type=Path, required=True, help=f"output CSV: {table}")
    if md:
        p.add_argument("--md", type=Path, required=True, help="output Markdown of the same")
    p.add_argument("--html", type=Path, required=True,
                   help="output HTML of the same, rounded, for the report")


def _table(args):
    from rnnlm.tables.perplexity import write_table

    write_table(args.runs, (args.runs_csv, args.runs_html), (args.csv, args.md, args.html),
                corpus=dict(args.corpus), published=dict(args.published), caches=args.caches,
                tuned=args.tuned, dynamics=args.dynamics)


def _add_table(sub):
    p = sub.add_parser("table", help="the runs, and test perplexity per experiment and mode "
                                     "(mean, sd, 95%% CI over seeds)")
    _add_runs(p)
    p.add_argument("--published", nargs="*", type=_pair("PPL with PPL > 0", positive), default=[],
                   metavar="EXPERIMENT=PPL",
                   help="published test perplexity of an experiment, shown beside its mean")
    _add_caches(p)
    _add_tuned(p)
    p.add_argument("--runs-csv", type=Path, required=True, help="output CSV, one row per run")
    p.add_argument("--runs-html", type=Path, required=True,
                   help="output HTML of the same, rounded, for the report")
    _add_formats(p, "one row per experiment and mode")
    p.set_defaults(func=_table)


def _compare(args):
    from rnnlm.tables.comparisons import write_comparisons

    write_comparisons(args.runs, args.csv, args.md, args.html, corpus=dict(args.corpus),
                      caches=args.caches, tuned=args.tuned, dynamics=args.dynamics)


def _add_compare(sub):
    p = sub.add_parser("compare", help="which mode (or experiment) is better: Welch's t-test "
                                       "on the seeds' test perplexities")
    _add_runs(p)
    _add_caches(p)
    _add_tuned(p)
    _add_formats(p, "one row per pair compared")
    p.set_defaults(func=_compare)


def _sweep(args):
    from rnnlm.plots import write_sweep_plot
    from rnnlm.tables.sweeps import write_sweep

    table = write_sweep(args.runs, args.name, args.csv, args.md, args.html)
    write_sweep_plot(table, args.name, args.plot)


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="one sweep's table and plot; its best point per mode "
                                     "chosen on validation")
    p.add_argument("--name", required=True, help="the sweep, as named under sweeps:")
    _add_runs(p, corpus=False)
    _add_formats(p, "one row per point and mode")
    p.add_argument("--plot", type=Path, required=True,
                   help="output PNG: test perplexity against each swept key, a line per mode")
    p.set_defaults(func=_sweep)


def _provenance(args):
    from rnnlm.tables.provenance import write_provenance

    write_provenance(args.runs, args.csv, args.html, dict(args.corpus), args.sources)


def _add_provenance(sub):
    p = sub.add_parser("provenance", help="what produced each run: versions, machine, commit, "
                                          "digests, the data's source")
    _add_runs(p)
    p.add_argument("--sources", type=Path, nargs="*", default=[], metavar="FILE",
                   help="source.json files of the download stage (resources/CORPUS/): where "
                        "each corpus was read and the digests of what was written")
    _add_formats(p, "one row per run", md=False)
    p.set_defaults(func=_provenance)


def _plots(args):
    from rnnlm.plots import write_plots

    write_plots(args.runs, args.out_dir)


def _add_plots(sub):
    p = sub.add_parser("plots", help="learning curves, test perplexity and throughput as PNG")
    _add_runs(p, corpus=False)
    p.add_argument("--out-dir", type=Path, required=True,
                   help="folder for learning_curves.EXPERIMENT.png (per experiment that is not "
                        "a sweep point), test_ppl.png, throughput.png")
    p.set_defaults(func=_plots)


def _dynamic_plot(args):
    from rnnlm.plots import write_stream_plot

    write_stream_plot(args.logps, args.experiment, args.out)


def _add_dynamic_plot(sub):
    p = sub.add_parser("dynamic-plot", help="test perplexity over the stream, static against "
                                            "dynamic evaluation, as PNG")
    p.add_argument("--logps", type=Path, nargs="+", required=True, metavar="FILE",
                   help="dynamic_eval.npz files of one experiment's runs, RUN/dynamic_eval.npz")
    p.add_argument("--experiment", required=True, help="its name, in the title")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.set_defaults(func=_dynamic_plot)


def add_commands(sub):
    for add in (_add_compare_predictions, _add_table, _add_compare, _add_sweep, _add_provenance,
                _add_plots, _add_dynamic_plot):
        add(sub)
