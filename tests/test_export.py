"""Export stage: model.onnx and model.pt compute what `rnnlm predict` computes (within 1e-5 on
log-probabilities), carry the state across calls, and `rnnlm score` reads model.onnx without
MXNet. Models are random (init_range 1, far from uniform) and saved as train saves them; the
PyTorch checks run in a Python with torch (conftest.torch_python) and skip without one.
"""

import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import onnxruntime
import pytest
import yaml
from conftest import REPO, RNNLM, rnnlm, torch_python
from faults.pipeline import MESSAGES

from rnnlm.cli import main
from rnnlm.export import layout, to_onnx, to_torch
from rnnlm.export.run import FORMATS, run_layout
from rnnlm.export.score import Scorer, score
from rnnlm.io import RnnlmError
from rnnlm.model import FUSED, ModelConfig, RNNModel, save_model_config
from rnnlm.mx import mxnet as mx
from rnnlm.mx import nd
from rnnlm.plan.runs import EXPORTS
from rnnlm.predict import feed, load_run, parse_prompt
from rnnlm.provenance import code_digest
from rnnlm.recurrent import RecurrentLayer
from rnnlm.vocab import EOS, UNK, Vocab, write_vocab

CTX = mx.cpu()
WORDS = ["the", "market", "said", "N", "shares", "rose", "fell", "in", UNK, EOS]
PROMPTS = ["the market", "shares rose in N", "the", "stocks fell"]  # stocks: read as <unk>
CASES = [(mode, tied, 2) for mode in FUSED for tied in (True, False)] + [("lstm", True, 3),
                                                                         ("gru", False, 1)]


def saved_run(folder, mode, tied=True, nlayers=2, words=WORDS):
    """A run folder (model.json + model.params, as train leaves them) and its vocab.tsv."""
    vocab = Vocab(words, [len(words) - i for i in range(len(words))])
    write_vocab(vocab, folder / "vocab.tsv")
    run = folder / "exp" / mode / "seed1"
    run.mkdir(parents=True)
    config = ModelConfig(mode, len(vocab), emsize=6, nhid=6, nlayers=nlayers, dropout=0.5,
                         tied=tied, init_range=1.0)
    mx.random.seed(7)
    model = RNNModel(config)
    model.initialize_weights(CTX)
    model.save_parameters(str(run / "model.params"))
    save_model_config(config, run / "model.json")
    return run, folder / "vocab.tsv"


def log_softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def predicted(run, vocab_path):
    """`rnnlm predict`'s next-word log-probabilities after each prompt (its ids), by MXNet."""
    model, vocab = load_run(run, vocab_path, CTX)
    out = {}
    for text in PROMPTS:
        ids = parse_prompt(text, vocab).ids
        out[text] = (ids, log_softmax(feed(model, ids, CTX)[0].asnumpy()))
    return out


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{'tied' * c[1]}-{c[2]}")
def exported(request, tmp_path_factory):
    """A run of each case exported through `rnnlm export` in both formats, and its predictions."""
    mode, tied, nlayers = request.param
    run, vocab_path = saved_run(tmp_path_factory.mktemp("export"), mode, tied, nlayers)
    for fmt, name in (("onnx", "model.onnx"), ("torch", "model.pt")):
        assert main(["export", "--run-dir", str(run), "--format", fmt, "--out",
                     str(run / name), "--threads", "1"]) == 0
    return run, vocab_path, predicted(run, vocab_path)


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    """One exported run (a 2-layer tied LSTM) for the tests of `rnnlm score`."""
    run, vocab_path = saved_run(tmp_path_factory.mktemp("score"), "lstm")
    assert main(["export", "--run-dir", str(run), "--format", "onnx", "--out",
                 str(run / "model.onnx")]) == 0
    return run, vocab_path


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(sess, ids, state=None):
    """log_probs (T, B, V) and the new state [arrays] after ``ids`` (T, B)."""
    ids = np.asarray(ids, dtype=np.int64)
    names = [i.name for i in sess.get_inputs()[1:]]
    if state is None:
        state = [np.zeros((1, ids.shape[1], i.shape[2]), np.float32)
                 for i in sess.get_inputs()[1:]]
    log_probs, *new = sess.run(None, {"ids": ids, **dict(zip(names, state, strict=True))})
    return log_probs, new


def test_onnx_gives_predicts_log_probabilities(exported):
    run, _, predictions = exported
    sess = session(run / "model.onnx")
    for ids, expected in predictions.values():
        log_probs, _ = run_onnx(sess, np.array(ids)[:, None])
        assert log_probs.shape == (len(ids), 1, len(WORDS))
        np.testing.assert_allclose(log_probs[-1, 0], expected, atol=1e-5, rtol=0)


def test_onnx_carries_the_state_across_calls_with_any_batch_and_length(exported):
    run, _, _ = exported
    sess = session(run / "model.onnx")
    ids = np.random.default_rng(0).integers(0, len(WORDS), size=(7, 3))
    whole, whole_state = run_onnx(sess, ids)
    first, state = run_onnx(sess, ids[:4])
    second, second_state = run_onnx(sess, ids[4:], state)
    np.testing.assert_allclose(np.concatenate([first, second]), whole, atol=1e-5, rtol=0)
    for a, b in zip(second_state, whole_state, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    single, _ = run_onnx(sess, ids[:, 1:2])  # a batch of one: the same column's numbers
    np.testing.assert_allclose(single[:, 0], whole[:, 1], atol=1e-5, rtol=0)


TORCH_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])  # tests/: word_language_model.py
import torch
from word_language_model import RNNModel  # pytorch/examples @ c0b889d5

out = []
for case in json.loads(sys.stdin.read()):
    c = json.load(open(case["json"]))
    net = RNNModel(c["mode"].upper(), c["vocab_size"], c["emsize"], c["nhid"], c["nlayers"],
                   c["dropout"], c["tied"]).eval()
    result = net.load_state_dict(torch.load(case["pt"], weights_only=True), strict=True)
    tied = net.decoder.weight is net.encoder.weight
    with torch.no_grad():
        last = []
        for ids in case["prompts"]:
            log_probs, _ = net(torch.tensor(ids)[:, None], net.init_hidden(1))
            last.append(log_probs[-1].tolist())
        ids = torch.tensor(case["stream"])
        whole, _ = net(ids, net.init_hidden(ids.shape[1]))
        first, hidden = net(ids[:4], net.init_hidden(ids.shape[1]))
        second, _ = net(ids[4:], hidden)
        carried = (torch.cat([first, second]) - whole).abs().max().item()
    out.append({"missing": result.missing_keys, "unexpected": result.unexpected_keys,
                "tied": tied, "last": last, "carried": carried})
print(json.dumps(out))
"""


@pytest.mark.skipif(torch_python() is None, reason="no Python with torch here")
def test_model_pt_loads_strictly_into_pytorchs_rnnmodel_and_gives_predicts_numbers(
        tmp_path_factory):
    cases, expected = [], []
    for mode, tied, nlayers in CASES:
        run, vocab_path = saved_run(tmp_path_factory.mktemp("torch"), mode, tied, nlayers)
        out = tmp_path_factory.mktemp("elsewhere") / "model.pt"  # model.json goes beside it
        assert main(["export", "--run-dir", str(run), "--format", "torch", "--out",
                     str(out)]) == 0
        predictions = predicted(run, vocab_path)
        stream = np.random.default_rng(0).integers(0, len(WORDS), size=(7, 3)).tolist()
        cases.append({"pt": str(out), "json": str(out.with_suffix(".json")), "stream": stream,
                      "prompts": [ids for ids, _ in predictions.values()]})
        expected.append((tied, [p for _, p in predictions.values()]))
    done = subprocess.run([torch_python(), "-c", TORCH_CHECK, str(REPO / "tests")],
                          input=json.dumps(cases), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for got, (tied, last) in zip(json.loads(done.stdout), expected, strict=True):
        assert (got["missing"], got["unexpected"], got["tied"]) == ([], [], tied)
        np.testing.assert_allclose(np.array(got["last"]), np.array(last), atol=1e-5, rtol=0)
        assert got["carried"] < 1e-5


class TorchStandIn(pickle.Unpickler):
    """Reads model.pt without torch: its storages as numpy arrays, only the globals torch's
    weights_only loader would allow."""

    ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
               ("torch", "FloatStorage")}

    def __init__(self, archive):
        super().__init__(archive.open("archive/data.pkl"))
        self.archive = archive

    def find_class(self, module, name):
        assert (module, name) in self.ALLOWED, (module, name)
        if name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, grad, hooks: (
                storage[offset:offset + int(np.prod(size))].reshape(size))
        return dict if name == "OrderedDict" else name

    def persistent_load(self, pid):
        kind, storage_type, key, location, numel = pid
        assert (kind, storage_type, location) == ("storage", "FloatStorage", "cpu")
        data = np.frombuffer(self.archive.read(f"archive/data/{key}"), dtype="<f4")
        assert data.size == numel
        return data


@pytest.mark.parametrize("tied", [True, False])
def test_model_pt_is_torch_saves_zip_of_the_arrays_without_torch(tmp_path, tied):
    run, _ = saved_run(tmp_path, "lstm", tied)
    state = to_torch.state_dict(run_layout(run))
    to_torch.write(state, tmp_path / "model.pt")
    with zipfile.ZipFile(tmp_path / "model.pt") as archive:
        assert archive.read("archive/version") == b"3\n"
        assert len([n for n in archive.namelist() if "/data/" in n]) == len(state) - tied
        loaded = TorchStandIn(archive).load()
    assert list(loaded) == list(state)
    assert list(state)[:5] == ["encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                               "rnn.bias_ih_l0", "rnn.bias_hh_l0"]
    for name, array in state.items():
        np.testing.assert_array_equal(loaded[name], array)


def awd(tmp_path, ids):
    """A tied LSTM whose last layer has emsize units (the AWD layout): its Layout, built of
    rnnlm.recurrent's RecurrentLayers, and its log-probabilities after ``ids`` (T, B) by MXNet."""
    run, _ = saved_run(tmp_path, "lstm", True)
    tied = run_layout(run)
    mx.random.seed(5)
    layers = [RecurrentLayer("lstm", 6, 10), RecurrentLayer("lstm", 10, 6)]
    x = nd.array(tied.embedding)[nd.array(ids)]  # (T, B, emsize)
    for layer in layers:
        layer.initialize(mx.init.Uniform(1.0), ctx=CTX)
        x, _ = layer(x, layer.begin_state(x.shape[1], CTX))
    logits = nd.dot(x, nd.array(tied.embedding).T) + nd.array(tied.decoder_bias)
    arrays = [layout.Layer(**{k: v.asnumpy() for k, v in layer.pieces().items()})
              for layer in layers]
    return (layout.Layout("lstm", tied.embedding, arrays, tied.embedding, tied.decoder_bias,
                          True), log_softmax(logits.asnumpy()))


def test_layers_of_different_sizes_export_to_onnx_and_are_refused_for_pytorch(tmp_path):
    ids = [[1, 2], [3, 4], [5, 0]]
    model, expected = awd(tmp_path, ids)
    to_onnx.write(model, tmp_path / "awd.onnx")
    log_probs, state = run_onnx(session(tmp_path / "awd.onnx"), ids)
    np.testing.assert_allclose(log_probs, expected, atol=1e-5, rtol=0)
    assert [s.shape for s in state] == [(1, 2, 10), (1, 2, 10), (1, 2, 6), (1, 2, 6)]
    with pytest.raises(RnnlmError, match=r"layers \(input, hidden\) are \[\(6, 10\), \(10, 6\)\]"
                       r": export it with --format onnx instead"):
        to_torch.state_dict(model)


def test_arrays_of_an_unknown_layout_are_refused_not_dropped(tmp_path):
    run, _ = saved_run(tmp_path, "gru", False)
    model = RNNModel(ModelConfig("gru", len(WORDS), emsize=6, nhid=6, tied=False))
    model.load_parameters(str(run / "model.params"), ctx=CTX)
    arrays = {k: v.asnumpy() for k, v in model.arrays().items()}
    arrays["decoder.tail0.weight"] = np.zeros((3, 6))  # e.g. an adaptive softmax's cluster
    with pytest.raises(RnnlmError, match="cannot export arrays decoder.tail0.weight: not the "
                                         "layout rnnlm.export knows"):
        layout.layout("gru", arrays, False)


def test_onnx_uses_opset_14_and_names_its_inputs_and_outputs(exported):
    import onnx

    run, _, _ = exported
    model = onnx.load(str(run / "model.onnx"))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 14)]
    assert model.ir_version == 7  # the IR of opset 14 (onnx 1.9): what onnxruntime 1.8 reads
    sess = session(run / "model.onnx")
    mode = json.loads((run / "model.json").read_text())
    n = mode["nlayers"] * (2 if mode["mode"] == "lstm" else 1)
    assert [(i.name, i.type, i.shape) for i in sess.get_inputs()] == [
        ("ids", "tensor(int64)", ["T", "B"])] + [
        (f"state{i}", "tensor(float)", [1, "B", 6]) for i in range(n)]
    assert [o.name for o in sess.get_outputs()] == ["log_probs"] + [
        f"new_state{i}" for i in range(n)]


# --- rnnlm score ---------------------------------------------------------------------------


def test_score_prints_each_words_log_probability_given_those_before(lstm):
    run, vocab_path = lstm
    model, vocab = load_run(run, vocab_path, CTX)
    sentence = "the market said"
    done = rnnlm("score", "--model", run / "model.onnx", "--vocab", vocab_path, "--threads", 1,
                 input=f"{sentence}\n\nshares fell\n")
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("# sentence ")[1:]
    assert len(blocks) == 2  # the blank line is skipped
    head, *rows = blocks[0].strip().splitlines()
    words = [r.split("\t")[0] for r in rows]
    got = [float(r.split("\t")[1]) for r in rows]
    assert words == [*sentence.split(), EOS]
    ids = [vocab.eos_id, *[vocab.index[w] for w in words]]
    expected = [log_softmax(feed(model, ids[:k], CTX)[0].asnumpy())[ids[k]]
                for k in range(1, len(ids))]
    np.testing.assert_allclose(got, expected, atol=2e-6)  # printed with 6 decimals
    ppl = np.exp(-np.mean(expected))
    assert head.startswith(f"1: ppl {ppl:.4f}, 4 tokens")


def test_score_help_says_how_a_sentence_is_scored(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "starts from a zero state after an implicit <eos>, so its first word is P(w1 | <eos>)" \
        in text
    assert "the <eos> ending it is scored too, and its perplexity is exp(-mean log-probability)" \
        in text


def test_score_does_not_import_mxnet(lstm):
    run, vocab_path = lstm
    code = ("import sys; from rnnlm.cli import main; rc = main(sys.argv[1:]); "
            "assert 'mxnet' not in sys.modules and 'rnnlm.mx' not in sys.modules, 'mxnet'; "
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "score", "--model",
                           str(run / "model.onnx"), "--vocab", str(vocab_path)],
                          input="the market\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# sentence 1: ppl ")


def test_score_reads_unknown_words_as_unk_where_the_vocabulary_has_one(lstm, caplog):
    run, vocab_path = lstm
    scorer = Scorer(run / "model.onnx", vocab_path)
    unknown = score(scorer, "the stocks rose")
    assert "scored as <unk>: stocks" in caplog.text
    assert unknown.words == ["the", "stocks", "rose", EOS]
    assert unknown.log_probs == score(scorer, f"the {UNK} rose").log_probs


def test_score_refuses_unknown_words_naming_them_without_unk(tmp_path):
    run, vocab_path = saved_run(tmp_path, "rnn_tanh", words=[w for w in WORDS if w != UNK])
    assert main(["export", "--run-dir", str(run), "--format", "onnx", "--out",
                 str(run / "model.onnx")]) == 0
    done = rnnlm("score", "--model", run / "model.onnx", "--vocab", vocab_path,
                 input="the stocks rose\n")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "rnnlm score: error: stocks: not in the vocabulary, which has no <unk>; score sentences "
        "of its words only"]


def score_bytes(run, vocab_path, data):
    """`rnnlm score` given raw bytes on stdin, as a pipe from a file of any encoding does."""
    return subprocess.run([str(RNNLM), "score", "--model", str(run / "model.onnx"), "--vocab",
                           str(vocab_path), "--threads", "1"], input=data, capture_output=True,
                          timeout=120)


def test_score_reads_lines_ended_by_a_lone_cr_or_crlf_as_unix_ones(lstm):
    run, vocab_path = lstm
    unix = score_bytes(run, vocab_path, b"the market said\n\nshares fell\n")
    assert unix.returncode == 0, unix.stderr
    assert unix.stdout.count(b"# sentence ") == 2
    for ends in (b"\r", b"\r\n"):
        done = score_bytes(run, vocab_path, ends.join([b"the market said", b"", b"shares fell"]))
        assert done.returncode == 0, done.stderr
        assert done.stdout == unix.stdout


def test_score_refuses_input_that_is_not_utf8_naming_the_line(lstm):
    run, vocab_path = lstm
    done = score_bytes(run, vocab_path, b"the market\nshares \xe9 fell\n")
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines()[-1] == (
        f"rnnlm score: error: {MESSAGES['score input not UTF-8']}")
    assert done.stdout.count(b"# sentence ") == 1  # the sentence before it was scored


@pytest.mark.parametrize("data", [b"", b"\n  \n\t\n"], ids=["nothing", "blank lines"])
def test_score_says_when_its_input_holds_no_sentence(lstm, data):
    run, vocab_path = lstm
    done = score_bytes(run, vocab_path, data)
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines()[-1] == (
        f"rnnlm score: error: {MESSAGES['score input without a sentence']}, e.g. echo 'the cat "
        "sat' | rnnlm score ...")
    assert done.stdout == b""


def test_score_refuses_a_vocabulary_of_another_size(lstm, tmp_path):
    run, _ = lstm
    other = tmp_path / "other.tsv"
    write_vocab(Vocab(WORDS[:5] + [EOS], [1] * 6), other)
    done = rnnlm("score", "--model", run / "model.onnx", "--vocab", other, input="the\n")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"rnnlm score: error: {run / 'model.onnx'} predicts {len(WORDS)} words but {other} has "
        "6; pass the vocabulary of its training"]


def test_score_refuses_a_file_that_is_not_an_onnx_model(tmp_path):
    (tmp_path / "vocab.tsv").write_text("id\tword\tcount\n0\t<eos>\t1\n")
    (tmp_path / "model.onnx").write_text("not a model")
    done = rnnlm("score", "--model", tmp_path / "model.onnx", "--vocab", tmp_path / "vocab.tsv",
                 input="the\n")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"rnnlm score: error: {tmp_path / 'model.onnx'}: not a model "
                           "onnxruntime can load (")
    assert line.endswith("); write it with rnnlm export --format onnx")


# --- rnnlm export: bad input ------------------------------------------------------------------


def error_lines(done):
    """stderr of a failed `rnnlm export`, without MXNet's log line of its engine's start."""
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.strip().splitlines() if "MXNet start using" not in line]


def test_export_refuses_an_unknown_format_in_one_line(tmp_path):
    run, _ = saved_run(tmp_path, "gru")
    done = rnnlm("export", "--run-dir", run, "--format", "tflite", "--out", tmp_path / "m")
    assert error_lines(done) == [
        "rnnlm export: error: unknown export format 'tflite'; choose one of onnx, torch"]
    assert not (tmp_path / "m").exists()


def test_export_refuses_a_run_without_a_finished_model(tmp_path):
    run = tmp_path / "exp" / "lstm" / "seed1"
    (run / "checkpoint").mkdir(parents=True)  # training, not done
    (run / "model.json").write_text("{}")
    done = rnnlm("export", "--run-dir", run, "--format", "onnx", "--out", run / "model.onnx")
    assert error_lines(done) == [
        f"rnnlm export: error: {run}: no trained model for export (model.params missing); train "
        "the run first (rnnlm train, or the train rule), or wait until its training ends"]
    assert not (run / "model.onnx").exists()


def test_export_refuses_a_mogrifier_run_naming_the_mode(tmp_path):
    """One format: both read the run through run_layout, which refuses the mode."""
    run, _ = saved_run(tmp_path, "mogrifier")
    done = rnnlm("export", "--run-dir", run, "--format", "torch", "--out", tmp_path / "m")
    assert error_lines(done)[-1:] == [  # after the log line of loading a digest-less model
        f"rnnlm export: error: {run}: mode mogrifier cannot be exported (model.onnx has no graph "
        "of its rounds yet, PyTorch's RNNModel no such cell); export a run of another mode"]
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.json").exists()


def test_the_schemas_export_formats_are_the_files_the_package_writes():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    export = schema["properties"]["export"]
    assert export["items"]["enum"] == list(EXPORTS) == list(FORMATS) and export["default"] == []
    assert EXPORTS == {"onnx": "model.onnx", "torch": "model.pt"}


def test_the_export_code_digest_covers_the_subpackage_and_what_it_imports(tmp_path):
    import shutil

    package = tmp_path / "rnnlm"
    shutil.copytree(REPO / "src" / "rnnlm", package)
    before = code_digest("export", package)
    with open(package / "export" / "score.py", "a") as f:
        f.write("# changed\n")
    changed = code_digest("export", package)
    assert code_digest("predict", package) == code_digest("predict", REPO / "src" / "rnnlm")
    with open(package / "vocab.py", "a") as f:  # score imports it
        f.write("# changed\n")
    assert len({before, changed, code_digest("export", package)}) == 3
