"""How a table is shown: its columns, rounded as display strings, in Markdown and in an HTML page
(tune_report's tables too)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import pandas as pd

from rnnlm.io import write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Col:
    """A shown column: its header, the table column(s) it formats, and whether it is text."""

    header: str
    source: str | tuple[str, ...]
    fmt: str | Callable = "{}"
    text: bool = False


def p_value(p):
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


CI = "[{:.2f}, {:.2f}]"
DIFF = "{:+.2f} [{:+.2f}, {:+.2f}]"
STYLE = ("body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
         "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
         "th{background:#f4f4f4}")


def shown(table, cols):
    """The table as display strings: rounded, empty where a value is missing."""
    def cell(row, col):
        values = [row[name] for name in ((col.source,) if isinstance(col.source, str)
                                         else col.source)]
        if any(pd.isna(value) for value in values):
            return ""
        return col.fmt(*values) if callable(col.fmt) else col.fmt.format(*values)

    return pd.DataFrame([[cell(row, col) for col in cols] for _, row in table.iterrows()],
                        columns=[col.header for col in cols])


def markdown(table, cols, notes=()):
    """A GitHub Markdown table, numbers right-aligned, then the notes as paragraphs."""
    lines = ["| " + " | ".join(col.header for col in cols) + " |",
             "| " + " | ".join(":--" if col.text else "--:" for col in cols) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in shown(table, cols).itertuples(index=False)]
    return "\n\n".join(["\n".join(lines), *notes]) + "\n"


def html_table(table, cols, table_id):
    left = ",".join(f"#{table_id} td:nth-child({i}),#{table_id} th:nth-child({i})"
                    for i, col in enumerate(cols, 1) if col.text)
    style = f"<style>{left}{{text-align:left}}</style>\n" if left else ""
    return style + shown(table, cols).to_html(index=False, border=0, table_id=table_id)


@dataclass(frozen=True)
class Html:
    """Markup to place as it is, where other parts of a page are text."""

    html: str


def html_page(title, *parts):
    """A whole HTML page: a title, then tables (HTML) and notes (text, escaped)."""
    body = "\n".join(part.html if isinstance(part, Html) else f"<p>{escape(part)}</p>"
                     for part in parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h3>{escape(title)}</h3>\n{body}\n</body>\n</html>\n")


def write_all(table, cols, title, notes, csv, md=None, html=None):
    """``table`` to CSV, and shown with ``cols`` and ``notes`` to Markdown and HTML."""
    write_text(csv, table.to_csv(index=False))
    if md:
        write_text(md, markdown(table, cols, notes))
    if html:
        write_text(html, html_page(title, Html(html_table(table, cols, "table")), *notes))
    log.info("%s: %d rows", csv, len(table))
