"""The provenance table: what produced each run (rnnlm.provenance's record in summary.json)."""

import logging

import pandas as pd

from rnnlm.io import write_text
from rnnlm.report import read_provenance
from rnnlm.tables.render import Col, Html, html_page, html_table

log = logging.getLogger(__name__)


def write_provenance(run_dirs, csv, html):
    """One row per run of what produced it; the HTML lists what every run shares once, then the
    rest per run, digests shortened to 12 characters."""
    table = read_provenance(run_dirs)
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
        "SHA-256 digests show their first 12 hex digits here, all 64 in provenance.csv."))
    log.info("%s, %s: %d runs", csv, html, len(table))
    return table
