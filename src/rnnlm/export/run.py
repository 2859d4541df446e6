"""``rnnlm export``: a trained run folder to model.onnx or model.pt (with model.json beside it).

The run is read as predict reads it (rnnlm.trained.load_model, on the CPU); its arrays go out by
the names model.params gives them (``RNNModel.arrays()``), through rnnlm.export.layout.
"""

import shutil
from pathlib import Path

from rnnlm.export import layout, to_onnx, to_torch
from rnnlm.io import RnnlmError, atomic_path
from rnnlm.mx import mxnet as mx
from rnnlm.plan.runs import EXPORTS
from rnnlm.trained import load_model, trained_run

FORMATS = tuple(EXPORTS)


def run_layout(run_dir):
    """The Layout of the finished model in ``run_dir``."""
    model = load_model(trained_run(run_dir, "export"), mx.cpu())
    if model.config.mode == "mogrifier":
        raise RnnlmError(f"{run_dir}: mode mogrifier cannot be exported (model.onnx has no graph "
                         "of its rounds yet, PyTorch's RNNModel no such cell); export a run of "
                         "another mode")
    if model.config.softmax != "full":
        raise RnnlmError(f"{run_dir}: softmax {model.config.softmax} cannot be exported yet "
                         "(model.onnx and PyTorch's RNNModel have a full decoder); export a run "
                         "of softmax full")
    arrays = {name: a.asnumpy() for name, a in model.arrays().items()}
    return layout.layout(model.config.mode, arrays, model.config.tied)


def export(run_dir, fmt, out):
    """Write ``out`` in ``fmt``; for torch also the run's model.json beside it (the sizes
    RNNModel is built with), unless ``out`` is in the run folder, where it already is."""
    if fmt not in FORMATS:
        raise RnnlmError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model_layout = run_layout(run_dir)
    out = Path(out)
    if fmt == "onnx":
        with atomic_path(out) as tmp:
            to_onnx.write(model_layout, tmp)
        return
    state = to_torch.state_dict(model_layout)
    config, beside = Path(run_dir) / "model.json", out.with_suffix(".json")
    if beside.resolve() != config.resolve():
        with atomic_path(beside) as tmp:
            shutil.copyfile(config, tmp)
    with atomic_path(out) as tmp:
        to_torch.write(state, tmp)
