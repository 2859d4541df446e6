"""The export rule through the real `snakemake`, on a PTB subset: `export: [onnx, torch]` writes
model.onnx and model.pt into each run folder, model.onnx gives the next-word probabilities the
pipeline's own predict job wrote, and `rnnlm score` reads it as the README says."""

import hashlib
import json
import shutil
import zipfile

import numpy as np
import onnxruntime
import pytest
from conftest import REPO, SPLITS, rnnlm
from test_workflow import planned, snakemake, write_config

TINY = {"emsize": 8, "nhid": 8, "nlayers": 2, "epochs": 1, "batch_size": 4,
        "eval_batch_size": 2, "bptt": 4, "max_batches": 5}
MODES = ["lstm", "rnn_relu"]


def ptb_subset(shared_ptb, folder, lines=(300, 40, 40)):
    """The first lines of each PTB split as a mirror, and their sha256 per split."""
    folder.mkdir()
    digests = {}
    for split, n in zip(SPLITS, lines, strict=True):
        text = (shared_ptb / f"ptb.{split}.txt").read_text().splitlines(keepends=True)[:n]
        (folder / f"ptb.{split}.txt").write_text("".join(text))
        digests[split] = hashlib.sha256("".join(text).encode()).hexdigest()
    return folder, digests


@pytest.mark.slow
def test_export_rule_writes_both_formats_that_match_predict(shared_ptb, tmp_path):
    mirror, digests = ptb_subset(shared_ptb, tmp_path / "mirror")
    workdir = write_config(tmp_path / "work", mirror, digests, modes=MODES, run=["tiny"],
                           experiments={"tiny": TINY}, export=["onnx", "torch"],
                           predict={"prompts": ["the company said", "in N the"], "top_k": 5})
    plan = planned(workdir)  # `all` asks for them
    assert plan["export"] == 2 * len(MODES) and plan["train"] == len(MODES)
    targets = [f"results/tiny/{mode}/seed1/{name}" for mode in MODES
               for name in ("model.onnx", "model.pt", "predictions.json")]
    snakemake(workdir, "--cores", "2", *targets)  # not the tables and plots: no need here
    vocab = workdir / "results/data/ptb/vocab.tsv"
    for mode in MODES:
        run = workdir / "results/tiny" / mode / "seed1"
        with zipfile.ZipFile(run / "model.pt") as archive:
            assert {"archive/data.pkl", "archive/version"} <= set(archive.namelist())
        assert json.loads((run / "model.json").read_text())["mode"] == mode
        session = onnxruntime.InferenceSession(str(run / "model.onnx"),
                                               providers=["CPUExecutionProvider"])
        words = [line.split("\t")[1] for line in vocab.read_text().splitlines()[1:]]
        for record in json.loads((run / "predictions.json").read_text())["predictions"]:
            ids = [words.index("<eos>"), *[words.index(w) for w in record["tokens"]]]
            feeds = {i.name: np.zeros((1, 1, i.shape[2]), np.float32)
                     for i in session.get_inputs()[1:]}
            log_probs = session.run(None, {"ids": np.array(ids)[:, None], **feeds})[0]
            probs = np.exp(log_probs[-1, 0].astype(np.float64))
            top = [probs[words.index(t["word"])] for t in record["top"]]
            np.testing.assert_allclose(top, [t["prob"] for t in record["top"]], atol=1e-5)
    scored = rnnlm("score", "--model", workdir / "results/tiny/lstm/seed1/model.onnx",
                   "--vocab", vocab, input="the company said it expects a loss\n")
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.startswith("# sentence 1: ppl ")
    assert len(scored.stdout.splitlines()) == 1 + 8  # seven words and <eos>
    assert planned(workdir, *targets) == {}
    repo = tmp_path / "repo"  # a change to the export code reruns the exports only
    repo.mkdir()
    shutil.copy(REPO / "Snakefile", repo / "Snakefile")
    shutil.copytree(REPO / "workflow", repo / "workflow")
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    with open(repo / "src/rnnlm/export/to_onnx.py", "a") as f:
        f.write("\n# a change to the export code\n")
    assert planned(workdir, *targets, snakefile=repo / "Snakefile") == {"export": 2 * len(MODES)}
