"""A finished tune's table and plot, from its rung files (``rnnlm halve``'s): every trial of
every rung per mode with its point, validation perplexity and the training it cost, which went
on, each mode's choice, and the budget each mode spent."""

import logging

import pandas as pd

from rnnlm.io import read_json, write_text
from rnnlm.plots import new_figure, save
from rnnlm.report import value_text
from rnnlm.tables.render import Col, Html, html_page, html_table, markdown

log = logging.getLogger(__name__)


def epoch_rows(folder):
    return pd.read_csv(f"{folder}/metrics.csv")


def trial_rows(rung_files):
    """One row per trial and rung: the job's own epochs' tokens and seconds (a continued
    trial's earlier epochs were its previous rung's job)."""
    rows = []
    for path in rung_files:
        rung = read_json(path)
        for result in rung["results"]:
            metrics = epoch_rows(result["folder"])
            new = metrics[metrics["epoch"] > rung["previous_epochs"]]
            before = metrics.loc[metrics["epoch"] <= rung["previous_epochs"], "tokens_seen"]
            rows.append({
                "tune": rung["tune"], "mode": rung["mode"], "trial": result["trial"],
                "rung": rung["rung"] + 1, "epochs": rung["epochs"], **result["point"],
                "valid_ppl": result["valid_ppl"], "diverged": bool(result["diverged"]),
                "continued": result["trial"] in rung["promoted"] and not rung["last"],
                "chosen": rung["last"] and result["trial"] in rung["promoted"],
                "train_tokens": int(new["tokens_seen"].max() - (before.max() if len(before)
                                                                else 0)) if len(new) else 0,
                "train_seconds": float(new["seconds"].sum()), "folder": result["folder"]})
    return pd.DataFrame(rows)


def budget(table):
    """Per mode: its choice, the choice's point and validation perplexity, and the training
    every trial of the mode cost together."""
    chosen = table[table["chosen"]].set_index("mode")
    spent = table.groupby("mode", sort=False)[["train_tokens", "train_seconds"]].sum()
    jobs = table.groupby("mode", sort=False).size().rename("jobs")
    return chosen.join(spent.add_suffix("_total")).join(jobs).reset_index()


def write_tune(rung_files, keys, csv, md, html, plot):
    """The tune's table (CSV, Markdown, HTML) and its learning-curve plot."""
    table = trial_rows(rung_files)
    write_text(csv, table.drop(columns="folder").to_csv(index=False))
    name = table["tune"].iloc[0]
    point = [Col(key, key, value_text, text=True) for key in keys]
    trial_cols = [Col("mode", "mode", text=True), Col("trial", "trial"), Col("rung", "rung"),
                  Col("epochs", "epochs"), *point, Col("valid ppl", "valid_ppl", "{:.2f}"),
                  Col("went on", "continued", lambda v: "yes" if v else ""),
                  Col("chosen", "chosen", lambda v: "yes" if v else ""),
                  Col("tokens", "train_tokens", "{:,}"), Col("seconds", "train_seconds",
                                                              "{:.1f}")]
    spent = budget(table)
    budget_cols = [Col("mode", "mode", text=True), Col("chosen trial", "trial"), *point,
                   Col("valid ppl", "valid_ppl", "{:.2f}"), Col("jobs", "jobs"),
                   Col("training tokens", "train_tokens_total", "{:,}"),
                   Col("training seconds", "train_seconds_total", "{:.0f}")]
    notes = [f"Successive halving, every mode at the same {table['trial'].nunique()} points: "
             "each rung trains its trials to its epochs (continued trials from their previous "
             "rung's checkpoint); the best on validation perplexity went on, and each mode's "
             "best of the last rung is its choice, trained afresh with the tune's seeds and "
             f"tested in results/{name}/ (the perplexity and comparisons tables). Nothing was "
             "chosen on test. Tokens and seconds: each job's own training epochs."]
    if table["diverged"].any():
        notes.append("A trial without a validation perplexity diverged: it ranks last.")
    write_text(md, f"## Chosen points and budget per mode\n\n{markdown(spent, budget_cols)}\n"
               f"## Every trial and rung\n\n{markdown(table, trial_cols, notes)}")
    write_text(html, html_page(f"Tune {name}", Html(html_table(spent, budget_cols, "budget")),
                               Html(html_table(table, trial_cols, "trials")), *notes))
    save(learning_curves(table, name), plot)
    log.info("%s: %d trial jobs in %d modes", csv, len(table), table["mode"].nunique())


def learning_curves(table, name):
    """Validation perplexity against epochs, one line per trial (its furthest rung's
    metrics), coloured by mode; the trials that went on drawn bold."""
    figure, (ax,) = new_figure(7, 4.5)
    went_on = set(zip(table.loc[table["continued"], "mode"],
                      table.loc[table["continued"], "trial"], strict=True))
    furthest = table.sort_values("rung").groupby(["mode", "trial"], sort=False).tail(1)
    modes = list(dict.fromkeys(table["mode"]))
    for _, row in furthest.iterrows():
        metrics = epoch_rows(row["folder"])
        bold = (row["mode"], row["trial"]) in went_on
        ax.plot(metrics["epoch"], metrics["valid_ppl"], marker="o", markersize=3,
                color=f"C{modes.index(row['mode'])}", linewidth=2.4 if bold else 0.8,
                alpha=1.0 if bold else 0.5, gid=f"{row['mode']}/trial{row['trial']}")
    for i, mode in enumerate(modes):
        ax.plot([], [], color=f"C{i}", label=mode)
    finite = table["valid_ppl"].dropna()
    if len(finite) and finite.max() / finite.min() > 5:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="validation perplexity",
           title=f"Tune {name}: every trial (bold: went on to a next rung)")
    ax.set_xticks(range(1, int(table["epochs"].max()) + 1))
    ax.legend()
    return figure
