"""The workflow's config, checked: rnnlm.plan expands it into the plan of runs and refuses what
it cannot run, naming the key, before any job starts. Then what all the rules share (wildcard
constraints, the `rnnlm` command, the digest of the code each stage runs). The logic (what the
config means, which runs it asks for) is the package's, unit-tested without Snakemake; paths.smk
and params.smk turn the plan into each job's files, params and resources.
"""

import functools
import os
import re
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

try:
    from rnnlm.config import NAME, Workflow
    from rnnlm.data import SPLITS
    from rnnlm.io import RnnlmError
    from rnnlm.plan.expand import make_plan
    from rnnlm.plan.runs import EXPORTS, MODES
    from rnnlm.provenance import PACKAGE, code_digest as package_digest
except ImportError:
    raise WorkflowError(
        "package rnnlm not found: run `make setup` in the repository and use .venv/bin/snakemake"
    ) from None

try:
    PLAN = make_plan(config, Workflow(Path(workflow.basedir, "workflow")))
except RnnlmError as err:
    raise WorkflowError(str(err)) from None
config.update(
    PLAN.config
)  # the report's "Config used" shows what ran: defaults, presets


wildcard_constraints:
    corpus="|".join(map(re.escape, PLAN.config["corpora"])),  # any corpus defined, used or not
    sweep=NAME,
    experiment=NAME + r"(?:/[^/~]+~[^/]+)*",  # a sweep's point: {sweep}/{key}~{value}/...
    mode="|".join(MODES),
    seed=r"[0-9]+",
    split="|".join(SPLITS),
    batch_size=r"[1-9][0-9]*",
    suffix="|".join(name.removeprefix("model.") for name in EXPORTS.values()),


# Rules call `rnnlm`; a snakemake run from the uv environment finds it there unactivated.
_bin = Path(sys.executable).parent
if shutil.which("rnnlm") is None and (_bin / "rnnlm").exists():
    os.environ.update(PATH=f"{_bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}")


@functools.cache  # several rules run the same stage's code
def code_digest(stage):
    """Digest of the code a stage runs, from the sources beside this Snakefile when it is a
    checkout (as `uv sync` installs them), else from the installed package."""
    sources = Path(workflow.basedir, "src", "rnnlm")
    return package_digest(stage, sources if sources.is_dir() else PACKAGE)
