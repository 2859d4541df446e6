"""`rnnlm watch`: the training runs under a results folder, followed through their files alone
(rnnlm.live's status file, summary.json), so it works beside a local `snakemake` as well as
from a login node over the shared filesystem of SLURM jobs.

A run is *running* while its status file is fresh: on this host, while the process that wrote
it lives; from another host, while it was rewritten within ``STALE`` seconds (or three of its
validations, when those are longer). It is *done* once its summary.json is newer than any
status file, and *stopped* when neither holds (killed, failed, or waiting to be resumed).
"""

import dataclasses
import datetime
import os
import platform
import time
from pathlib import Path

from rnnlm.live import NAME, read_live

STALE = 600  # seconds without a report before a run on another host counts as stopped
INTERVALS = {True: 2.0, False: 60.0}  # seconds between looks: on a terminal, in a log
CAPTION = ("train ppl: the last report's; valid ppl: the last finished epoch's (a done run: "
           "its best epoch's); ETA: to the last epoch, at the pace so far")


@dataclasses.dataclass
class RunView:
    """What the files of one run folder say."""

    name: str  # its folder under the results folder, e.g. default/lstm/seed1
    state: str  # running, stopped or done
    live: dict  # the last status written (empty when there is none)
    summary: dict  # summary.json of a done run (empty otherwise)


def alive(live, now):
    """Whether the writer of the status ``live`` still runs (see the module's docstring)."""
    if live.get("host") == platform.node():
        try:
            os.kill(live["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process of that id: it exists
            return True
        return True
    return now - live.get("updated", 0) < max(STALE, 3 * (live.get("valid_seconds") or 0))


def scan(results, now=None):
    """Every run folder under ``results`` that holds a status file or a summary.json."""
    now = time.time() if now is None else now
    results, views = Path(results), {}
    for path in results.glob(f"**/checkpoint/{NAME}"):
        live = read_live(path)
        if live is not None:
            views[path.parent.parent] = RunView("", "running" if alive(live, now) else "stopped",
                                                live, {})
    for path in results.glob("**/summary.json"):
        folder = path.parent
        seen = views.get(folder)
        if seen is None or path.stat().st_mtime >= seen.live.get("updated", 0):
            summary = read_live(path)  # read as leniently as a status file
            if summary is not None:
                views[folder] = RunView("", "done", {}, summary)
    for folder, view in views.items():
        view.name = folder.relative_to(results).as_posix()
    return sorted(views.values(), key=lambda view: view.name)


def eta(live, now):
    """Seconds until the run's last epoch ends, at its pace so far: the windows left at this
    epoch's seconds per window, plus a validation per epoch left at the last one's time."""
    epochs_left = live["epochs"] - live["epoch"]
    windows_left = live["windows"] - live["window"] + epochs_left * live["windows"]
    seconds = windows_left * live["seconds_per_window"] + (
        (epochs_left + 1) * (live.get("valid_seconds") or 0))
    return max(0.0, seconds - (now - live["updated"]))


def clock(seconds):
    return str(datetime.timedelta(seconds=round(seconds)))


def ppl(value):
    return "-" if value is None else f"{value:.1f}"


def fields(view, now):
    """The columns of a run's row: epoch, windows, tokens/s, ETA, perplexities, state."""
    live, summary = view.live, view.summary
    if view.state == "done":
        epochs = summary.get("epochs", 0)
        return {"epoch": f"{epochs}/{epochs}", "windows": "all",
                "tok_s": f"{summary.get('tokens_per_s', 0):,.0f}",
                "eta": "-", "train": "-", "valid": ppl(summary.get("best_valid_ppl")),
                "state": "done"}
    state = view.state if view.state == "running" else (
        f"stopped: no report since {time.strftime('%H:%M:%S', time.localtime(live['updated']))}")
    return {"epoch": f"{live['epoch']}/{live['epochs']}",
            "windows": f"{live['window']}/{live['windows']}",
            "tok_s": f"{live['tokens_per_s']:,.0f}",
            "eta": clock(eta(live, now)) if view.state == "running" else "-",
            "train": ppl(live.get("train_ppl")), "valid": ppl(live.get("valid_ppl")),
            "state": state}


def line(view, now):
    """One plain line of a run, for a log (no terminal to redraw)."""
    f = fields(view, now)
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    if view.state == "done":
        return (f"{stamp} {view.name}: done, {f['epoch'].split('/')[0]} epochs, best valid ppl "
                f"{f['valid']}, {f['tok_s']} tok/s")
    live = view.live
    return (f"{stamp} {view.name}: epoch {f['epoch']}, window {f['windows']} "
            f"({100 * live['window'] // max(live['windows'], 1)}%), "
            f"{f['tok_s']} tok/s, ETA {f['eta']}, train ppl {f['train']}, valid ppl "
            f"{f['valid']}" + ("" if view.state == "running" else f", {f['state']}"))


def tally(views):
    counts = {state: sum(v.state == state for v in views) for state in ("done", "stopped")}
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def watch(results, interval=None, until_done=False, console=None):
    """Follow the runs under ``results`` until Ctrl-C or, with ``until_done``, until a look
    finds none running: bars on a terminal, else a line per running run every ``interval``
    seconds and one when a run ends."""
    from rich.console import Console  # here: only `rnnlm watch` pays for importing rich

    console = console or Console()
    interval = interval or INTERVALS[console.is_terminal]
    show = Bars(console) if console.is_terminal else Lines(console, results)
    try:
        with show:
            while True:
                now = time.time()
                views = scan(results, now)
                show.update(views, now)
                if until_done and not any(v.state == "running" for v in views):
                    break
                time.sleep(interval)
    except KeyboardInterrupt:  # Ctrl-C: the bars are left as last drawn, no traceback
        return
    console.print(f"nothing running under {results}: {tally(views)}", highlight=False,
                  soft_wrap=True)


class Lines:
    """Plain lines: each running run at every look, a stopped or done run once."""

    def __init__(self, console, results):
        self.console, self.results, self.told = console, results, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, views, now):
        if self.told is None and not views:
            self.console.print(f"no run under {self.results} has reported yet; watching",
                               highlight=False, soft_wrap=True)
        self.told = self.told or {}
        for view in views:
            if view.state == "running" or self.told.get(view.name) != view.state:
                self.console.print(line(view, now), highlight=False, soft_wrap=True)
            self.told[view.name] = view.state


class Bars:
    """A table of rich bars, a row per run, redrawn in place at every look; its headers name
    the columns, and narrow terminals wrap cells rather than cut them."""

    COLUMNS = ("run", "epoch", "windows", "", "tok/s", "ETA", "train ppl", "valid ppl", "state")

    def __init__(self, console):
        from rich.live import Live

        self.live = Live(console=console, auto_refresh=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def update(self, views, now):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(box=None, header_style="bold", caption=CAPTION, caption_justify="left")
        for name in self.COLUMNS:
            table.add_column(name, overflow="fold", no_wrap=name == "run")
        # running runs first: a table taller than the terminal loses its last rows
        for view in sorted(views, key=lambda v: ("running", "stopped", "done").index(v.state)):
            f = fields(view, now)
            done = view.state == "done"
            bar = ProgressBar(total=1 if done else view.live["windows"],
                              completed=1 if done else view.live["window"], width=20)
            table.add_row(view.name, f["epoch"], f["windows"], bar, f["tok_s"], f["eta"],
                          f["train"], f["valid"], f["state"])
        if not views:
            table.add_row("(no run has reported yet)")
        self.live.update(table, refresh=True)
