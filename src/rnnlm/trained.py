"""A trained run folder read back for the stages after training (evaluate, cache, predict,
export): its ``model.json`` and ``model.params``, the latter checked against the SHA-256 that
``summary.json`` records, so a damaged file stops with the fix instead of giving numbers.
"""

import logging
from pathlib import Path

from rnnlm.io import Damaged, RnnlmError, damage, read_json
from rnnlm.model import ModelConfig, RNNModel

log = logging.getLogger(__name__)


def read_model_config(path):
    fields = read_json(path)
    try:
        return ModelConfig(**fields)
    except TypeError as err:
        raise RnnlmError(f"{path}: not a model config ({err}); rerun the train stage") from None


def trained_run(run_dir, use):
    """``run_dir`` if its training finished (model.json and model.params are there), else the
    one-line error that says so, naming what the model was wanted for (``use``)."""
    run_dir = Path(run_dir)
    missing = [name for name in ("model.json", "model.params") if not (run_dir / name).is_file()]
    if missing:
        raise RnnlmError(f"{run_dir}: no trained model for {use} ({' and '.join(missing)} "
                         "missing); train the run first (rnnlm train, or the train rule), or "
                         "wait until its training ends")
    return run_dir


def load_model(run_dir, ctx):
    """The trained model of a run folder (``model.json`` + ``model.params``), ready to predict.

    model.params must have the SHA-256 its summary.json records (a run trained before rnnlm
    recorded it loads unchecked): a damaged file stops with the fix instead of giving numbers.
    """
    run_dir = Path(run_dir)
    model = RNNModel(read_model_config(run_dir / "model.json"))
    params = run_dir / "model.params"
    if not params.is_file():
        raise RnnlmError(f"{params}: file not found; run the train stage first")
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    try:
        if "model_sha256" in summary:
            problem = damage(params, summary["model_sha256"], "summary.json")
            if problem:
                raise Damaged(problem)
        else:
            log.info("%s: no digest recorded (trained before rnnlm recorded one): loaded "
                     "unchecked", params)
        model.load_parameters(str(params), ctx=ctx)
    except Damaged as err:
        raise Damaged(f"{err}: {refresh(params, summary)}") from None
    model.hybridize(static_alloc=True, static_shape=model.static_shape)
    return model


def refresh(params, summary):
    """How Snakemake writes a damaged ``params`` anew: a missing output reruns its job."""
    if summary.get("shared_from"):
        return (f"delete it and run snakemake again to copy it anew from "
                f"{summary['shared_from']}")
    return "delete it and run snakemake again to retrain the run"
