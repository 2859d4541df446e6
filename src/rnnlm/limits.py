"""What a job cannot allocate, refused before it allocates anything: an array over MXNet's
element limit, or more memory than the job has (rnnlm.memory's estimate).

MXNet 1.9.1's builds index tensors with 32-bit integers: an array of 2^31 - 1 elements or more
stops the job with "build with USE_INT64_TENSOR_SIZE=1", a fix no user can apply. The workflow
refuses what the vocabulary does not size when it reads the config (rnnlm.plan.sizes); `rnnlm
train` and `rnnlm evaluate` refuse the rest, and a model over their memory, before they start.
"""

import dataclasses
import json
import math
import os
from pathlib import Path

from rnnlm.io import RnnlmError
from rnnlm.memory import (
    GATES,
    MB,
    Shapes,
    array_shape,
    dynamic_estimate,
    eval_window,
    evaluate_estimate,
    megabytes,
    tail_shares,
    train_estimate,
    train_window,
)

MAX_ELEMENTS = 2**31 - 2  # MXNet checks size < (1 << 31) - 1 (without USE_INT64_TENSOR_SIZE)


@dataclasses.dataclass(frozen=True)
class Array:
    """One MXNet array a job allocates: what it is, its size as factors, the key that sets it."""

    what: str
    factors: str
    elements: int
    key: str

    def refusal(self):
        digits = str(self.elements)  # an int beyond any float's range too
        count = f"{digits[0]}.{digits[1]}e{len(digits) - 1}"
        return (f"makes {self.what} hold {self.factors} = {count} elements, one array over "
                f"MXNet's 2^31 limit (this build has no int64 tensor sizes); lower {self.key}")


def model_arrays(shapes):
    """The recurrent layers' flat vectors: what the vocabulary does not change."""
    gates = GATES[shapes.mode]
    return [Array(f"{shapes.mode}'s recurrent layer {i + 1}",
                  f"{gates}x{units}x({inputs}+{units}+2)", size,
                  "emsize" if units == shapes.emsize and shapes.emsize > shapes.nhid else "nhid")
            for i, ((inputs, units), size) in enumerate(zip(shapes.layers(), shapes.recurrent(),
                                                            strict=True))]


def window_arrays(shapes, columns, rows):
    """The fused RNN's gates over a window of ``rows`` x ``columns`` (batch) tokens."""
    gates = GATES[shapes.mode]
    return [Array("a window's gates", f"{columns}x{rows}x{gates}x{units}",
                  columns * rows * gates * units, "batch_size or bptt")
            for _, units in shapes.layers()]


def vocabulary_arrays(shapes, columns, rows, shares=None):
    """The embedding and a window's logits: what the vocabulary sets."""
    v = shapes.vocab_size
    return [Array("the embedding", f"{v}x{shapes.emsize}", v * shapes.emsize,
                  "emsize or the vocabulary (vocab.max_size)"),
            Array("a window's logits", f"{columns}x{rows}x{shapes.logit_columns(shares):.0f}",
                  columns * rows * math.ceil(shapes.logit_columns(shares)),
                  "batch_size or bptt, or use softmax adaptive")]


def too_large(arrays):
    """The first of ``arrays`` MXNet cannot allocate, or None."""
    return next((a for a in arrays if a.elements > MAX_ELEMENTS), None)


def machine_mb():
    """The memory this process may use: the machine's, or its control group's limit (a SLURM
    job's --mem, a container's) when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = "max"
    return (min(total, int(limit)) if limit.isdigit() else total) // MB


SMALLER = "lower nhid, emsize, batch_size or bptt, or give the job more memory"


def check_job(parts, arrays, what, limit_mb=None, device="cpu", fix=SMALLER):
    """Refuse, before any allocation, a job with an array MXNet cannot allocate or, on the CPU,
    whose estimate is more than ``limit_mb`` (its mem_mb) or than the machine has; ``fix``
    ends the message."""
    array = too_large(arrays)
    if array:
        raise RnnlmError(f"{what} {array.refusal()}")
    if device != "cpu":
        return
    need, machine = megabytes(parts), machine_mb()
    have, whose = (limit_mb, "the job's mem_mb") if limit_mb and limit_mb < machine else (
        machine, "this machine's memory")
    if need > have:
        largest = ", ".join(f"{part} {math.ceil(parts[part] / MB)} MB"
                            for part in sorted(parts, key=parts.get, reverse=True)[:2])
        raise RnnlmError(f"{what} needs about {need} MB (rnnlm.memory's estimate; largest parts: "
                         f"{largest}), more than {whose} ({have} MB); {fix}")


def train_arrays(mode, settings, counts, train_shape, valid_shape):
    """The arrays of a training job that could be over the limit (train_estimate's arguments)."""
    shapes = Shapes.of(mode, len(counts), settings)
    rows = min(train_window(settings["bptt"], settings["variable_bptt"]), train_shape[0] - 1)
    return [*model_arrays(shapes), *window_arrays(shapes, train_shape[1], rows),
            *vocabulary_arrays(shapes, train_shape[1], rows, tail_shares(shapes, counts)),
            *vocabulary_arrays(shapes, valid_shape[1], eval_window(settings["bptt"],
                                                                     valid_shape[0]))]


def describe(fields, shape):
    """A model and its windows in a few words, for a refusal."""
    return (f"{fields['mode']} (nhid {fields['nhid']}, emsize {fields['emsize']}, nlayers "
            f"{fields['nlayers']}, {fields['vocab_size']} words, batch {shape[1]})")


def check_train(model_config, config, counts, train, valid, limit_mb=None, device="cpu"):
    """`rnnlm train`'s refusal before it allocates anything (``check_job``); arrays it cannot
    read are left to rnnlm.device.load_array, which names the problem."""
    try:
        shapes = array_shape(train), array_shape(valid)
    except (OSError, ValueError):
        return
    if any(len(shape) != 2 or shape[0] < 2 for shape in shapes):
        return
    settings = {**dataclasses.asdict(model_config), **dataclasses.asdict(config)}
    parts = train_estimate(model_config.mode, settings, counts, *shapes)
    arrays = train_arrays(model_config.mode, settings, counts, *shapes)
    check_job(parts, arrays, describe(settings, shapes[0]), limit_mb, device)


def check_evaluate(model_json, bptt, data, limit_mb=None, device="cpu"):
    """`rnnlm evaluate`'s refusal before it allocates anything, as ``check_train``."""
    try:
        fields, shape = json.loads(Path(model_json).read_text()), array_shape(data)
        shapes = Shapes.of(fields["mode"], fields["vocab_size"], fields)
        parts = evaluate_estimate(fields, bptt, shape)
        arrays = [*model_arrays(shapes), *vocabulary_arrays(shapes, shape[1],
                                                            eval_window(bptt, shape[0]))]
    except (OSError, ValueError, KeyError, IndexError):
        return  # rnnlm.model and rnnlm.device name what is wrong with these files
    check_job(parts, arrays, describe(fields, shape), limit_mb, device)


def check_dynamic(model_json, segment, train, valid, test, workers, hidden, limit_mb=None,
                  device="cpu"):
    """`rnnlm dynamic-eval`'s refusal before it allocates anything, as ``check_train``:
    ``workers`` passes at a time, ``hidden`` whether the cache runs on top."""
    try:
        fields, ms_shape = json.loads(Path(model_json).read_text()), array_shape(train)
        steps = [array_shape(path)[0] for path in (valid, test)]
        shapes = Shapes.of(fields["mode"], fields["vocab_size"], fields)
        parts = dynamic_estimate(fields, segment, ms_shape, *steps, workers, hidden)
        arrays = [*model_arrays(shapes), *vocabulary_arrays(
            shapes, ms_shape[1], min(segment, ms_shape[0] - 1))]
    except (OSError, ValueError, KeyError, IndexError):
        return  # rnnlm.model and rnnlm.device name what is wrong with these files
    fix = ("give the job fewer threads (each pass at a time holds a copy of the model) or more "
           "memory" if workers > 1 else "give the job more memory")
    check_job(parts, arrays, describe(fields, ms_shape), limit_mb, device, fix)
