"""The provenance table: what produced each run (rnnlm.provenance's record in summary.json), where
its corpus was read (the download's source.json), and the hyperparameters each experiment's runs
recorded: the report's landing page names none of these, as it shows the config of the report
command, not of the run."""

import logging

import pandas as pd

from rnnlm.io import write_text
from rnnlm.plan.runs import Run
from rnnlm.report import read_file, read_provenance
from rnnlm.tables.render import Col, Html, html_page, html_table

log = logging.getLogger(__name__)


def write_provenance(run_dirs, csv, html, corpus=None, sources=()):
    """One row per run of what produced it, with where its corpus was read (``sources``); the
    HTML lists what every run shares once, then the rest per run, digests shortened to 12
    characters."""
    table = read_provenance(run_dirs, corpus, sources)
    settings = hyperparameters(run_dirs)
    write_text(csv, table.to_csv(index=False))
    shared = [c for c in table.columns[3:] if table[c].astype(str).nunique() == 1]
    varying = [c for c in table.columns if c not in shared]
    short = table.map(lambda v: v[:12] if isinstance(v, str) and len(v) == 64 else v)
    common = pd.DataFrame({"field": shared, "value": [short[c].iloc[0] for c in shared]})
    cols = [Col(c, c, text=True) for c in varying]
    write_text(html, html_page(
        "Provenance of every run",
        f"What all {len(table)} runs share:", Html(html_table(common, (
            Col("field", "field", text=True), Col("value", "value", text=True)), "shared")),
        "What differs between runs:", Html(html_table(short, cols, "runs")),
        "SHA-256 digests show their first 12 hex digits here, all 64 in provenance.csv.",
        "Hyperparameters each experiment's runs recorded (summary.json):",
        Html(html_table(settings, [Col(c, c, text=True) for c in settings.columns],
                        "hyperparameters"))))
    log.info("%s, %s: %d runs", csv, html, len(table))
    return table


def hyperparameters(run_dirs):
    """One row per hyperparameter, one column per experiment: the values its runs recorded,
    joined where they differ (mode and seed, which always do, are left out)."""
    values = {}
    for run_dir in run_dirs:
        recorded = read_file(run_dir, "summary.json").get("hyperparameters", {})
        column = values.setdefault(Run.of_folder(run_dir).experiment, {})
        for key, value in recorded.items():
            if key not in ("mode", "seed") and str(value) not in column.setdefault(key, []):
                column[key].append(str(value))
    table = pd.DataFrame({name: {key: ", ".join(v) for key, v in column.items()}
                          for name, column in values.items()})
    return table.rename_axis("key").reset_index().fillna("")
