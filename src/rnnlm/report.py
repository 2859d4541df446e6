"""Report stage, first step: finished run folders read into tables.

A run folder is ``<results>/<experiment...>/<mode>/seed<N>``: ``train`` left summary.json,
metrics.csv and progress.csv there, ``evaluate`` test.json, ``cache`` cache.json where the
experiment asks for the cache, and ``dynamic_eval`` dynamic_eval.json where it asks for dynamic
evaluation. An experiment with slashes is a point
of a sweep, ``<sweep>/<key>~<value>/...`` (snakemake.utils.Paramspace's pattern, keys in the
grid's order), so a run's identity is read from its path alone, one seed or many.
"""

import json
import numbers
import os
from pathlib import Path

import pandas as pd

from rnnlm.contention import contended
from rnnlm.io import RnnlmError, read_json
from rnnlm.plan.runs import Run

DEFAULT_CORPUS = "ptb"
STAGE_OF = {"summary.json": "train", "metrics.csv": "train", "progress.csv": "train",
            "test.json": "evaluate", "cache.json": "cache", "dynamic_eval.json": "dynamic_eval"}
# The runs table's numbers: column -> (file, key) it is read from.
RUN_NUMBERS = {
    "best_valid_ppl": ("summary.json", "best_valid_ppl"),
    "test_ppl": ("test.json", "test_ppl"),
    "epochs": ("summary.json", "epochs"),
    "train_seconds": ("summary.json", "train_seconds"),
    "wall_seconds": ("summary.json", "wall_seconds"),
    "tokens_per_s": ("summary.json", "tokens_per_s"),
    "param_count": ("summary.json", "param_count"),
}
# The continuous cache's numbers, from cache.json; empty for a run without it. base: the same
# batch-1 pass without the cache (test_ppl is evaluate's, at the experiment's eval batch size).
CACHE_NUMBERS = {"test_ppl_cache": "test_ppl_cache", "cache_base_test_ppl": "test_ppl",
                 "cache_theta": "theta", "cache_lambda": "lambda", "cache_window": "window"}
# Dynamic evaluation's, from dynamic_eval.json; base: its static batch-1 pass. With the cache
# on top only where the experiment also asks for the cache (else empty).
DYNAMIC_NUMBERS = {"test_ppl_dynamic": "test_ppl_dynamic", "dynamic_base_test_ppl": "test_ppl",
                   "dynamic_lr": "lr", "dynamic_decay": "decay"}
DYNAMIC_CACHE_NUMBERS = {"test_ppl_dynamic_cache": "test_ppl_dynamic_cache"}
# what each file adds to a run's row: file -> (the numbers it must hold, those it may)
ADAPTED_FILES = {"cache.json": (CACHE_NUMBERS, {}),
                 "dynamic_eval.json": (DYNAMIC_NUMBERS, DYNAMIC_CACHE_NUMBERS)}
# trained_as: the run whose training a run shares (rnnlm.share), empty for one that trained
# What the machine did while a run trained (summary.json's provenance.conditions, from
# rnnlm.contention), empty for a run from before they were recorded; contention: why its timing
# is distorted, '' when nothing says so.
CONDITIONS = ("tokens_per_cpu_s", "cpu_per_wall", "load_start", "load_end")
RUN_COLUMNS = ("experiment", "sweep", "corpus", "mode", "seed", *RUN_NUMBERS, *CONDITIONS,
               "contention", "trained_as", *CACHE_NUMBERS, *DYNAMIC_NUMBERS,
               *DYNAMIC_CACHE_NUMBERS)
GROUP = ["experiment", "mode"]  # the runs of one group differ by their seed only


def parse_value(text):
    """A swept value as a number where it is one, so that points sort and plot numerically."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def value_text(value):
    """A swept value as a reader writes it: 0 rather than 0.0 (a grid of 0 and 0.5 reads as
    floats)."""
    return f"{value:g}" if isinstance(value, numbers.Number) else str(value)


def split_experiment(experiment):
    """(sweep, point) of a sweep point ``sweep/key~value/...``, point as ((key, value), ...) in
    the grid's order; (None, ()) for a plain experiment."""
    name, *pairs = experiment.split("/")
    point = []
    for pair in pairs:
        key, sep, value = pair.partition("~")
        if not (key and sep):
            raise RnnlmError(f"experiment {experiment!r}: {pair!r} is not key~value; a sweep "
                             "point is SWEEP/KEY~VALUE/...")
        point.append((key, parse_value(value)))
    return (name, tuple(point)) if pairs else (None, ())


def point_text(experiment):
    """A sweep point as its reader writes it: ``lr=0.5, dropout=0``."""
    return ", ".join(f"{key}={value_text(value)}" for key, value in split_experiment(experiment)[1])


def run_name(folder):
    """``experiment/mode/seedN`` of a run folder (None for None): how the tables name a run."""
    if folder is None:
        return None
    run = Run.of_folder(folder)
    return f"{run.experiment}/{run.mode}/seed{run.seed}"


def shared_training(runs):
    """{experiment: (its runs that share another's training, its runs, the experiments that
    trained them)} of the runs table, for the experiments with such runs."""
    found = {}
    for experiment, group in runs[runs["trained_as"].notna()].groupby("experiment", sort=False):
        trainers = dict.fromkeys(Run.of_folder(name).experiment for name in group["trained_as"])
        found[experiment] = (len(group), int((runs["experiment"] == experiment).sum()),
                             list(trainers))
    return found


def read_file(run_dir, name, columns=()):
    """A run's JSON file as a dict or CSV file as a DataFrame (needing ``columns``), or a one-line
    error naming the file and the stage that writes it."""
    path, stage = Path(run_dir) / name, STAGE_OF[name]
    try:
        if name.endswith(".json"):
            return json.loads(path.read_text())
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; rerun the {stage} stage for this run") from None
    except (ValueError, pd.errors.ParserError) as err:  # JSONDecodeError is a ValueError
        raise RnnlmError(f"{path}: unreadable ({err}); rerun the {stage} stage for this "
                         "run") from None
    missing = [column for column in columns if column not in table.columns]
    if missing or table.empty:
        raise RnnlmError(f"{path}: needs rows with {', '.join(columns)} (missing: "
                         f"{', '.join(missing) or 'rows'}); rerun the {stage} stage for this run")
    return table


def read_run(run_dir, corpus, adapted=()):
    """One row of the runs table; the numbers of its ``adapted`` files (cache.json,
    dynamic_eval.json) too."""
    ident = Run.of_folder(run_dir)
    row = {"experiment": ident.experiment, "sweep": ident.sweep,
           "corpus": corpus_of(ident, corpus),
           "mode": ident.mode, "seed": ident.seed}
    files = {name: read_file(run_dir, name) for name in ("summary.json", "test.json")}
    for column, (name, key) in RUN_NUMBERS.items():
        if key not in files[name]:
            raise RnnlmError(f"{Path(run_dir) / name}: no {key!r}; rerun the {STAGE_OF[name]} "
                             "stage for this run")
        row[column] = files[name][key]
    row["trained_as"] = run_name(files["summary.json"].get("shared_from"))
    row.update(conditions(files["summary.json"]))
    for name in adapted:
        found = read_file(run_dir, name)
        needed, optional = ADAPTED_FILES[name]
        missing = [key for key in needed.values() if key not in found]
        if missing:
            raise RnnlmError(f"{Path(run_dir) / name}: no {missing[0]!r}; rerun the "
                             f"{STAGE_OF[name]} stage for this run")
        row.update({column: found.get(key) for column, key in {**needed, **optional}.items()})
    return row


def conditions(summary):
    """A run's CONDITIONS and contention, None each where its summary predates them."""
    held = (summary.get("provenance") or {}).get("conditions")
    if not isinstance(held, dict):
        return dict.fromkeys((*CONDITIONS, "contention"))
    return {**{key: held.get(key) for key in CONDITIONS},
            "contention": contended(held, summary.get("device", "cpu"))}


def in_given_order(table, columns):
    """``table`` sorted by ``columns``: names in the order they first appear, numbers ascending."""
    def rank(values):
        if pd.api.types.is_numeric_dtype(values):
            return values
        return values.map({value: i for i, value in enumerate(values.unique())})

    return table.sort_values(list(columns), key=rank, kind="stable").reset_index(drop=True)


def read_runs(run_dirs, corpus=None, caches=(), dynamics=()):
    """The runs table: one row per run folder, grouped by experiment and mode in the order
    given, seeds ascending. ``corpus`` maps an experiment (or a sweep) to its corpus' name;
    others are on ``DEFAULT_CORPUS``. ``caches`` and ``dynamics``: the cache.json and
    dynamic_eval.json files to read (those the config asks for, not whatever a folder holds),
    each in its run's folder."""
    if not run_dirs:
        raise RnnlmError("no run folders given; pass --runs RESULTS/EXPERIMENT/MODE/seedN ...")
    given = {os.path.normpath(run_dir) for run_dir in run_dirs}
    adapted = {}  # run folder -> the adapted files it has
    for paths in (caches, dynamics):
        for path in map(Path, paths):
            folder = os.path.normpath(path.parent)
            if folder not in given:
                raise RnnlmError(f"{folder}/{path.name} is not in a run folder given; pass its "
                                 "folder with --runs too")
            adapted.setdefault(folder, []).append(path.name)
    table = pd.DataFrame([read_run(run_dir, corpus or {},
                                   adapted.get(os.path.normpath(run_dir), ()))
                          for run_dir in run_dirs], columns=RUN_COLUMNS)
    twice = table[table.duplicated([*GROUP, "seed"])]
    if len(twice):
        first = twice.iloc[0]
        raise RnnlmError(f"run {first.experiment}/{first['mode']}/seed{first.seed} given twice; "
                         "pass each run once")
    return in_given_order(table, [*GROUP, "seed"])


def read_curves(run_dir):
    """Training perplexity at each report (progress.csv) and validation perplexity at each
    epoch's end (metrics.csv), both against the training tokens seen."""
    progress = read_file(run_dir, "progress.csv", ("tokens_seen", "train_ppl"))
    metrics = read_file(run_dir, "metrics.csv", ("epoch", "tokens_seen", "valid_ppl"))
    # a resumed run may report a window twice: its last report counts
    return (progress.drop_duplicates("tokens_seen", keep="last"),
            metrics.drop_duplicates("epoch", keep="last"))


def corpus_of(ident, corpus):
    """The corpus' name of run ``ident``, from ``corpus`` (experiment or sweep -> name)."""
    return corpus.get(ident.experiment, corpus.get(ident.sweep, DEFAULT_CORPUS))


def flatten(record, prefix=""):
    """A record's nested keys joined by dots, lists by commas: one table cell each."""
    flat = pd.json_normalize(record, sep=".").iloc[0].to_dict()
    return {prefix + key: ", ".join(map(str, value)) if isinstance(value, list) else value
            for key, value in flat.items()}


def read_provenance(run_dirs, corpus=None, sources=()):
    """One row per run: its identity, then summary.json's ``provenance`` flattened, then what the
    download of its corpus recorded (``sources``: source.json files), each as the stage that
    ran wrote it, not as any later command's config says."""
    downloads = {}
    for path in sources:
        record = read_json(path)
        name = record.pop("corpus")
        downloads[name] = flatten(record, "download.")
    rows = []
    for run_dir in run_dirs:
        ident = Run.of_folder(run_dir)
        summary = read_file(run_dir, "summary.json")
        if not isinstance(summary.get("provenance"), dict):
            raise RnnlmError(f"{Path(run_dir) / 'summary.json'}: no 'provenance'; rerun the "
                             "train stage for this run")
        flat = {key: value for key, value in flatten(summary["provenance"]).items()
                if key != "seed"}
        name = corpus_of(ident, corpus or {})
        rows.append({"experiment": ident.experiment, "mode": ident.mode, "seed": ident.seed,
                     **flat, "corpus": name, **downloads.get(name, {})})
    return in_given_order(pd.DataFrame(rows), [*GROUP, "seed"])
