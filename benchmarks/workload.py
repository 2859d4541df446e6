"""What throughput.py measures: an experiment's settings, its arrays, and the work of a window.

The arrays are PTB's, built by the data stages from the local mirror, else generated ones of PTB's
shapes; a window's FLOPs count its matrix products, biases and softmax cross-entropy.
"""

import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_PTB = REPO.parent / "shared" / "data" / "ptb"
PTB_TOKENS = {"train": 929_589, "valid": 73_760, "test": 82_430}  # with <eos>, as batchified
PTB_VOCAB = 10_000
SOFTMAX_FORWARD, SOFTMAX_BACKWARD = 4, 2  # per logit: max, subtract, exp, sum; p - onehot, scale


def gemms(mode, emsize, nhid, nlayers, vocab, batch, bptt, train=True):
    """The matrix products of one window as (m, k, n, calls): C (m x n) = A (m x k) B (k x n).

    Forward: the decoder, and per layer the input projection of all rows at once and the
    recurrent product once per step. Backward: each y = x W adds dx = dy W' and dW = x' dy.
    """
    from rnnlm.recurrent import GATES  # here: the script sets MXNet's threads before it loads

    rows, gates = batch * bptt, GATES[mode] * nhid
    forward = [(rows, nhid, vocab, 1)]
    for layer in range(nlayers):
        forward += [(rows, emsize if layer == 0 else nhid, gates, 1), (batch, nhid, gates, bptt)]
    if not train:
        return forward
    return (forward + [(m, n, k, c) for m, k, n, c in forward]
            + [(k, m, n, c) for m, k, n, c in forward])


def window_flops(mode, emsize, nhid, nlayers, vocab, batch, bptt, train=True):
    """Floating-point operations of one window (forward, and backward when ``train``).

    Matrix products 2mkn; biases one add per output (and one per gradient entry backward);
    softmax cross-entropy SOFTMAX_FORWARD per logit forward, SOFTMAX_BACKWARD backward; the
    embedding is a gather forward (0) and a scatter-add backward (one add per value). The gates'
    elementwise nonlinearities are not counted (under 1% at these sizes).
    """
    from rnnlm.recurrent import GATES

    rows, gates = batch * bptt, GATES[mode] * nhid
    products = sum(2 * m * k * n * c for m, k, n, c in
                   gemms(mode, emsize, nhid, nlayers, vocab, batch, bptt, train))
    biases = rows * vocab + nlayers * 2 * rows * gates  # decoder; i2h and h2h per layer
    softmax = rows * vocab * SOFTMAX_FORWARD
    if train:
        biases *= 2
        softmax += rows * vocab * SOFTMAX_BACKWARD
    embedding = rows * emsize if train else 0
    return products + biases + softmax + embedding


# --- settings and data -----------------------------------------------------------------------


def experiment_settings(name, config_path, overrides=()):
    """Experiment ``name`` as the pipeline would train it (rnnlm.plan: config.yaml's experiment,
    else a preset, under the schema's defaults), then ``overrides``, KEY=VALUE strings read as
    YAML (``bptt=35``); with the resolved config (defaults filled, corpora merged)."""
    from rnnlm.config import Workflow
    from rnnlm.io import RnnlmError
    from rnnlm.plan.expand import make_plan

    config = yaml.safe_load(Path(config_path).read_text()) or {}
    try:
        plan = make_plan({**config, "run": [name]}, Workflow(REPO / "workflow"))
    except RnnlmError as err:
        sys.exit(f"throughput.py: {config_path}: {err}")
    if name not in plan.experiments:
        sys.exit(f"throughput.py: {name!r} is a sweep; name one experiment or preset")
    settings = dict(plan.experiments[name])
    if settings["corpus"] != "ptb":
        sys.exit(f"throughput.py: {name!r} trains on {settings['corpus']}; this benchmark "
                 "measures PTB's arrays (or generated ones of their shapes) only")
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in settings:
            sys.exit(f"throughput.py: --set {item}: no such setting; choose one of "
                     f"{', '.join(settings)}")
        settings[key] = yaml.safe_load(value)
    return settings, plan.config


def local_mirror(ptb):
    """A folder holding PTB's three files (``ptb``: its resolved corpus definition): its url if
    local, else the shared copy beside the repo; None when neither is there."""
    from rnnlm.data import Source

    source = Source("ptb", ptb["url"], files=ptb["files"])
    url = source.location("")
    for folder in ([url] if isinstance(url, Path) else []) + [SHARED_PTB]:
        if all((folder / name).is_file() for name in ptb["files"].values()):
            return folder
    return None


def ptb_arrays(mirror, ptb, batch, eval_batch, folder):
    """The data stages on the local mirror: download (copy, verify), vocab, batchify; timed."""
    from rnnlm.batchify import batchify_file
    from rnnlm.data import Source, download
    from rnnlm.vocab import build_vocab_files, read_vocab

    start = time.perf_counter()
    source = Source("ptb", str(mirror), files=ptb["files"], digests=ptb["digests"])
    texts = download(source, folder / "ptb")
    build_vocab_files(*texts, folder / "vocab.tsv", folder / "stats.json")
    arrays = {split: batchify_file(text, folder / "vocab.tsv", size, folder / f"{split}.npy")
              for split, text, size in zip(PTB_TOKENS, texts, (batch, eval_batch, eval_batch),
                                           strict=True)}
    return arrays, len(read_vocab(folder / "vocab.tsv")), time.perf_counter() - start


def generated_arrays(batch, eval_batch, seed=0):
    """Random ids in arrays of the shapes PTB's would have."""
    rng = np.random.default_rng(seed)
    return {split: rng.integers(0, PTB_VOCAB, size=(tokens // size, size), dtype=np.int32)
            for (split, tokens), size in zip(PTB_TOKENS.items(), (batch, eval_batch, eval_batch),
                                             strict=True)}


def zipf_arrays(batch, eval_batch, vocab, seed=0):
    """Ids of PTB's shapes over ``vocab`` words drawn from data_stages.py's Zipf law (frequency
    ~ 1/rank), each id its rank: as a vocabulary sorted by frequency numbers a corpus's words."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1))
    cdf /= cdf[-1]
    return {split: np.minimum(np.searchsorted(cdf, rng.random((tokens // size, size))),
                              vocab - 1).astype(np.int32)
            for (split, tokens), size in zip(PTB_TOKENS.items(), (batch, eval_batch, eval_batch),
                                             strict=True)}
