"""Successive halving: every trial trains to the first rung; at each rung the best
ceil(n / eta) of a mode's n trials, on validation perplexity, go on to the next; the best of the
last rung is the mode's choice. A diverged trial is worse than any other and never goes on."""

import math

from rnnlm.io import RnnlmError, read_json, write_json


def rung_sizes(trials, rungs, eta):
    """Trials that train in each rung: n, ceil(n / eta), ..."""
    sizes = [trials]
    for _ in rungs[1:]:
        sizes.append(math.ceil(sizes[-1] / eta))
    return sizes


def promoted(results, keep):
    """The ``keep`` best trials of ``results`` (trial -> validation perplexity, None when it
    diverged), best first; ties go to the lower trial number."""
    ranked = sorted((ppl, trial) for trial, ppl in results.items() if ppl is not None)
    return [trial for _, trial in ranked[:keep]]


def select(results, keep, what):
    """``promoted``, or an RnnlmError naming ``what`` (the tune, mode and rung) when every trial
    diverged: there is nothing to continue."""
    chosen = promoted(results, keep)
    if not chosen:
        raise RnnlmError(f"{what}: all {len(results)} trials diverged; narrow the space (a "
                         "lower lr or clip range) or raise trials")
    return chosen


def write_rung(out, *, tune, mode, rung, rungs, eta, trials, keys):
    """Rung ``rung``'s record for one mode: each trial's point (its ``keys`` as trained) and
    validation perplexity, from its run folder (``trials``: trial -> folder), and the trials
    that go on: the best ceil(n / eta), or on the last rung the best one, the mode's choice."""
    results, ppls = [], {}
    for trial, folder in sorted(trials.items()):
        summary = read_json(f"{folder}/summary.json")
        ppls[trial] = summary["best_valid_ppl"]
        results.append({"trial": trial, "folder": folder,
                        "point": {key: summary["hyperparameters"][key] for key in keys},
                        "valid_ppl": summary["best_valid_ppl"],
                        "diverged": summary.get("diverged")})
    last = rung == len(rungs) - 1
    what = f"tune {tune}, mode {mode}, rung {rung + 1} ({rungs[rung]} epochs)"
    keep = 1 if last else math.ceil(len(trials) / eta)
    write_json(out, {"tune": tune, "mode": mode, "rung": rung, "epochs": rungs[rung],
                     "previous_epochs": rungs[rung - 1] if rung else 0, "last": last,
                     "results": results, "promoted": select(ppls, keep, what)})
