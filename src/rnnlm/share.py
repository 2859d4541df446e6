"""Share stage: a run whose training equals an earlier run's (rnnlm.plan.runs.Plan.shared: the
same mode, data and `rnnlm train` settings) gets that run's training outputs instead of training
again, so everything after training reads its folder as if it had trained there.

The outputs are copied, not linked: a copy is a file of its own, written now, so Snakemake's
timestamps order it after the trained run's (a retrained source reruns the share) and a rerun of
either deletes only its own files. summary.json, written last as train writes it, gains
``shared_from``: the folder that trained. A source whose model.params is not the one its
summary.json records is refused: a damaged copy would stop everything after the share.
"""

import shutil
from pathlib import Path

from rnnlm.io import Damaged, RnnlmError, atomic_path, damage, read_json, write_json

TRAINED = ("model.params", "model.json", "metrics.csv", "progress.csv")  # then summary.json


def share(trained_dir, out_dir):
    """Copy the training outputs of run folder ``trained_dir`` into ``out_dir``; return the
    summary written there."""
    trained, out = Path(trained_dir), Path(out_dir)
    if trained.resolve() == out.resolve():
        raise RnnlmError(f"{out}: a run cannot share its own training; give --from another run")
    summary = read_json(trained / "summary.json")  # the mark that its training finished
    missing = [name for name in TRAINED if not (trained / name).is_file()]
    if missing:
        raise RnnlmError(f"{trained}: {', '.join(missing)} missing beside summary.json; rerun "
                         "the train stage for that run")
    if "model_sha256" in summary:  # none in a run trained before rnnlm recorded it
        problem = damage(trained / "model.params", summary["model_sha256"], "summary.json")
        if problem:
            raise Damaged(f"{problem}: delete it and run snakemake again to retrain the run")
    for name in TRAINED:
        with atomic_path(out / name) as tmp:
            shutil.copyfile(trained / name, tmp)
    summary = {**summary, "shared_from": str(trained_dir)}
    write_json(out / "summary.json", summary)
    return summary
