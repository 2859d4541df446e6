"""One step of the model as an ONNX graph, built with the ``onnx`` package's helpers.

    ids (T, B) int64, state0..stateN-1 (1, B, hidden) float32
      -> log_probs (T, B, vocab), new_state0..new_stateN-1 (1, B, hidden)

T and B are dynamic. The states are the model's flat list: per layer [h], or [h, c] for an LSTM
(RecurrentStack's order), each as large as its layer. Gather (embedding), one ONNX LSTM/GRU/RNN
node per layer, MatMul + Add (decoder; a tied one reads the embedding through a Transpose, so the
matrix is stored once) and LogSoftmax. Dropout is absent: the graph is the model in predict mode.

Why not MXNet's own exporter (mxnet.onnx.export_model): it imports ``onnx.mapping``, which onnx
removed in 1.16, and with that shimmed its graph does not load in onnxruntime (a Split without
``split``), takes the ids as float32 and ends in logits. Opset 14: every operator used here has
its current definition by then (LSTM, GRU and RNN 14; LogSoftmax, Gather, MatMul, Squeeze 13;
Add 14): a newer opset would change nothing, and onnxruntime reads opset 14 (IR 7) since 1.8.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rnnlm.export.layout import reorder_gates

OPSET = 14
# ONNX's gate order, as indices into MXNet's blocks (LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h)
GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_relu": [0], "rnn_tanh": [0]}
OPS = {"lstm": ("LSTM", {}), "gru": ("GRU", {"linear_before_reset": 1}),
       "rnn_relu": ("RNN", {"activations": ["Relu"]}),
       "rnn_tanh": ("RNN", {"activations": ["Tanh"]})}
INPUT, OUTPUT = "ids", "log_probs"


def state_names(layout):
    """(input names, output names) of the state arrays, in the model's flat order."""
    n = len(layout.state_sizes())
    return [f"state{i}" for i in range(n)], [f"new_state{i}" for i in range(n)]


def _layer_nodes(layout, i, layer, x, states, new_states):
    """The nodes and initializers of recurrent layer ``i``: input ``x`` (T, B, in) -> (T, B, h)."""
    op, attrs = OPS[layout.mode]
    order, h = GATE_ORDER[layout.mode], layer.hidden
    weights = {
        f"W{i}": reorder_gates(layer.i2h_weight, order, h)[None],  # (1, gates*h, in)
        f"R{i}": reorder_gates(layer.h2h_weight, order, h)[None],  # (1, gates*h, h)
        f"B{i}": np.concatenate([reorder_gates(layer.i2h_bias, order, h),
                                 reorder_gates(layer.h2h_bias, order, h)])[None],
    }
    inits = [numpy_helper.from_array(a, name) for name, a in weights.items()]
    node = helper.make_node(op, [x, *weights, "", *states], [f"Y{i}", *new_states],
                            name=f"layer{i}", hidden_size=h, **attrs)
    squeeze = helper.make_node("Squeeze", [f"Y{i}", "axis1"], [f"out{i}"])  # (T, 1, B, h)
    return [node, squeeze], inits


def build(layout):
    """The ONNX ModelProto of ``layout`` (checked)."""
    ins, outs = state_names(layout)
    per = layout.states_per_layer
    nodes = [helper.make_node("Gather", ["embedding", INPUT], ["emb0"])]  # (T, B, emsize)
    inits = [numpy_helper.from_array(layout.embedding, "embedding"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    x = "emb0"
    for i, layer in enumerate(layout.layers):
        more, weights = _layer_nodes(layout, i, layer, x, ins[i * per:(i + 1) * per],
                                     outs[i * per:(i + 1) * per])
        nodes += more
        inits += weights
        x = f"out{i}"
    decoder = "embedding" if layout.tied else "decoder_weight"
    if not layout.tied:
        inits.append(numpy_helper.from_array(layout.decoder_weight, decoder))
    inits.append(numpy_helper.from_array(layout.decoder_bias, "decoder_bias"))
    nodes += [helper.make_node("Transpose", [decoder], ["decoder_t"]),  # (hidden, vocab)
              helper.make_node("MatMul", [x, "decoder_t"], ["decoded"]),
              helper.make_node("Add", ["decoded", "decoder_bias"], ["logits"]),
              helper.make_node("LogSoftmax", ["logits"], [OUTPUT], axis=-1)]
    v = layout.vocab_size
    sizes = layout.state_sizes()
    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.INT64, ["T", "B"])]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "B", h])
               for n, h in zip(ins, sizes, strict=True)]
    outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["T", "B", v])]
    outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "B", h])
                for n, h in zip(outs, sizes, strict=True)]
    graph = helper.make_graph(nodes, f"rnnlm_{layout.mode}", inputs, outputs, inits)
    opset = helper.make_opsetid("", OPSET)
    model = helper.make_model(graph, opset_imports=[opset], producer_name="rnnlm",
                              ir_version=helper.find_min_ir_version_for([opset]))
    helper.set_model_props(model, {"mode": layout.mode, "vocab_size": str(v)})
    onnx.checker.check_model(model, full_check=True)
    return model


def write(layout, path):
    """``path`` as the serialized model of ``layout``."""
    path.write_bytes(build(layout).SerializeToString())
