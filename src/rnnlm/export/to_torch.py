"""A PyTorch state_dict file written without torch: what ``torch.save(state_dict)`` writes.

The state_dict is that of PyTorch's word_language_model ``RNNModel`` (pytorch/examples, commit
c0b889d5f43150f288ecdd5dbd16c146d79e5bdf, word_language_model/model.py): ``encoder.weight``,
``rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}``, ``decoder.weight``, ``decoder.bias``. Its
nn.LSTM and nn.GRU take gates in MXNet's order (i,f,g,o; r,z,n), so the arrays go across as they
are. Its ``rnn`` is one multi-layer module of nhid units, so a model whose layers differ in size
cannot be expressed and is refused.

The file is torch's zip format (torch/serialization.py, ``_save``): ``archive/data.pkl``, a
protocol-2 pickle of an OrderedDict whose tensors are ``torch._utils._rebuild_tensor_v2`` calls
on storages named by persistent ids ``('storage', torch.FloatStorage, key, 'cpu', numel)``, each
storage's little-endian bytes in ``archive/data/<key>``, and ``archive/version``. The pickle is
written opcode by opcode (pickle itself would import torch to name those globals) and holds only
what ``torch.load(..., weights_only=True)`` accepts: no class of ours, nothing to execute.
"""

import struct
import zipfile

import numpy as np

from rnnlm.io import RnnlmError

EXAMPLES_COMMIT = "c0b889d5f43150f288ecdd5dbd16c146d79e5bdf"
PIECES = {"i2h_weight": "weight_ih", "h2h_weight": "weight_hh", "i2h_bias": "bias_ih",
          "h2h_bias": "bias_hh"}


def state_dict(layout):
    """{name: array} in the order of ``RNNModel.state_dict()``; a tied matrix under both names
    (the same array, one storage in the file, as torch.save writes it)."""
    sizes = [(layer.input, layer.hidden) for layer in layout.layers]
    emsize, nhid = layout.embedding.shape[1], layout.layers[0].hidden
    expected = [(emsize, nhid)] + [(nhid, nhid)] * (len(sizes) - 1)
    if sizes != expected:
        raise RnnlmError(f"PyTorch's word_language_model RNNModel has layers of one size (nhid) "
                         f"after an embedding of emsize; this model's layers (input, hidden) are "
                         f"{sizes}: export it with --format onnx instead")
    out = {"encoder.weight": layout.embedding}
    for k, layer in enumerate(layout.layers):
        out.update({f"rnn.{name}_l{k}": getattr(layer, piece) for piece, name in PIECES.items()})
    out["decoder.weight"] = layout.embedding if layout.tied else layout.decoder_weight
    out["decoder.bias"] = layout.decoder_bias
    return out


def _str(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(value):
    return b"J" + struct.pack("<i", value)  # BININT (sizes below 2**31)


def _tuple(values):
    return b"(" + b"".join(map(_int, values)) + b"t"  # MARK ... TUPLE


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()  # GLOBAL


def _tensor(key, array):
    storage = (b"(" + _str("storage") + _global("torch", "FloatStorage") + _str(key)
               + _str("cpu") + _int(array.size) + b"tQ")  # persistent id tuple, BINPERSID
    strides = [int(np.prod(array.shape[i + 1:])) for i in range(array.ndim)]
    hooks = _global("collections", "OrderedDict") + b")R"  # backward_hooks: OrderedDict()
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + _int(0)
            + _tuple(array.shape) + _tuple(strides) + b"\x89" + hooks + b"tR")  # NEWFALSE


def write(state, path):
    """``path`` as torch.save(OrderedDict(state)) of float32 tensors would write it."""
    keys, storages = {}, []
    for array in state.values():
        if id(array) not in keys:
            keys[id(array)] = str(len(storages))
            storages.append(np.ascontiguousarray(array, dtype="<f4"))
    body = b"".join(_str(name) + _tensor(keys[id(a)], np.asarray(a)) for name, a in state.items())
    pickled = (b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + b"u.")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for key, storage in enumerate(storages):
            archive.writestr(f"archive/data/{key}", storage.tobytes())
        archive.writestr("archive/version", "3\n")
