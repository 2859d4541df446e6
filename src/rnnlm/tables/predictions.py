"""The predictions table: per corpus and prompt, the runs' most probable next words side by side."""

from html import escape

import pandas as pd

from rnnlm.io import RnnlmError, read_json, write_text
from rnnlm.plan.runs import MODES
from rnnlm.tables.render import Col, Html, html_page, html_table, markdown
from rnnlm.vocab import UNK


def _word(top, markdown=True):
    word = top["word"].replace("|", "\\|") if markdown else top["word"]
    return f"`{word}` {top['prob']:.3f}" if markdown else f"{word} {top['prob']:.3f}"


def _run_order(run):
    mode = run["mode"]
    return (run["corpus"] or "", run["experiment"], MODES.index(mode) if mode in MODES
            else len(MODES), mode, run["seed"])


def _titles(runs):
    """Column titles: the mode alone when every run is of one experiment and seed."""
    one = len({(r["experiment"], r["seed"]) for r in runs}) == 1
    return [r["mode"] if one else f"{r['experiment']}/{r['mode']}/seed{r['seed']}" for r in runs]


def prompt_table(text, runs, markdown=True):
    """(notes, DataFrame of rank x run, or None) for one prompt: each run's top next words."""
    found = [next((p for p in r["predictions"] if p["prompt"] == text), None) for r in runs]
    errors = sorted({p["error"] for p in found if p and "error" in p})
    if errors:
        return [f"Cannot be read: {error}" for error in errors], None
    unknown = sorted({w for p in found if p for w in p["unknown"]})
    notes = [f"Not in the vocabulary, read as {UNK}: {', '.join(unknown)}"] if unknown else []
    depth = max(len(p["top"]) for p in found if p)
    rows = [[n + 1] + [_word(p["top"][n], markdown) if p and n < len(p["top"]) else ""
                       for p in found] for n in range(depth)]
    return notes, pd.DataFrame(rows, columns=["rank", *_titles(runs)])


def write_predictions_table(inputs, md_path, html_path):
    """results/predictions.md and .html: per corpus and prompt, the runs' top next words side by
    side; the vocabulary's size is the data's."""
    runs = sorted((read_json(p) for p in inputs), key=_run_order)
    if not runs:
        raise RnnlmError("no predictions.json given; run the predict stage first")
    intro = ("Most probable next words after each prompt (probability after the word), one "
             "column per model.")
    lines, parts = ["# Next-word predictions", "", intro, ""], []
    for corpus, size in dict.fromkeys((r["corpus"], r["vocab_size"]) for r in runs):
        group = [r for r in runs if (r["corpus"], r["vocab_size"]) == (corpus, size)]
        heading = f"{corpus or 'corpus'}: {size:,}-word vocabulary"
        lines += [f"## {heading}", ""]
        parts.append(Html(f"<h4>{escape(heading)}</h4>"))
        for text in dict.fromkeys(p["prompt"] for r in group for p in r["predictions"]):
            notes, table = prompt_table(text, group)
            lines += [f"### `{text}`", ""]
            lines += [note.replace(UNK, f"`{UNK}`") + "\n" for note in notes]
            parts += [Html(f"<h5>{escape(text)}</h5>"), *notes]
            if table is not None:
                cols = [Col(c, c, text=c != "rank") for c in table.columns]
                lines += [markdown(table, cols).rstrip(), ""]
                _, shown_html = prompt_table(text, group, markdown=False)
                parts.append(Html(html_table(shown_html, cols, f"p{len(parts)}")))
    write_text(md_path, "\n".join(lines))
    write_text(html_path, html_page("Next-word predictions", intro, *parts))
    return runs
