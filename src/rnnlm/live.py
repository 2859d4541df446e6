"""The live status of a training run: one small JSON file in its checkpoint folder, rewritten
atomically at each report, for `rnnlm watch` (rnnlm.watch) to read.

Files only, no sockets: a run on a SLURM node and a watcher on the login node share nothing but
the results folder. The file lives beside the checkpoint, which a finished run removes (or a
tune's trial moves, without it), so a file left behind is the mark of a run that stopped.
"""

import json
import os
import platform
import time
from pathlib import Path

from rnnlm.io import write_json

NAME = "live.json"


def write_live(path, **fields):
    """Rewrite the status file at ``path``, stamped with the writer and the time of writing."""
    write_json(path, {**fields, "host": platform.node(), "pid": os.getpid(),
                      "updated": time.time()})


def read_live(path):
    """The status at ``path``, or None when it is gone or half-seen (a run that just finished,
    a filesystem that shows a rename late): the watcher looks again at its next round."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
