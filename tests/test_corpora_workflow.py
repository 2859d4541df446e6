"""Corpora through the real `snakemake`: PTB from a plain folder (the README's mirror example), a
WikiText-style archive served over http:// with its digest in the config, and a user's own text
folder, in one run, to the predictions and the report."""

import hashlib
import json
import random
import re
import zipfile

import pandas as pd
import pytest
from conftest import SPLITS, http_server
from test_workflow import EXPERIMENTS, snakemake, write_config

TINY = {**EXPERIMENTS["wide"], "nhid": 8, "emsize": 8}


def wikitext_like(folder, seed=0):
    """A zip like wikitext-2-v1.zip: corpus/wiki.{split}.tokens, headings, blank lines, case,
    punctuation split off and <unk>; its SHA-256."""
    rng = random.Random(seed)
    words = ["The", "game", "was", "released", "in", "2010", ",", "and", ".", "it", "<unk>"]
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "wt.zip", "w") as archive:
        for split, lines in zip(SPLITS, (400, 60, 60), strict=True):
            text = [" = Heading = \n", " \n"]
            text += [" " + " ".join(rng.choices(words, k=rng.randint(4, 15))) + " \n \n"
                     for _ in range(lines)]
            archive.writestr(f"corpus/wiki.{split}.tokens", "".join(text))
    return hashlib.sha256((folder / "wt.zip").read_bytes()).hexdigest()


def own_text(folder, seed=1):
    """Three files of someone's own text, names of their choosing, no <unk> at all."""
    rng = random.Random(seed)
    words = [f"word{i}" for i in range(15)]
    folder.mkdir(parents=True)
    for name, lines in (("a.txt", 300), ("b.txt", 50), ("c.txt", 50)):
        (folder / name).write_text("".join(" ".join(rng.choices(words, k=8)) + "\n"
                                           for _ in range(lines)))


@pytest.fixture
def served(tmp_path):
    """A folder served over http:// on 127.0.0.1, for the test's lifetime."""
    folder = tmp_path / "www"
    with http_server(folder) as server:
        yield folder, f"http://127.0.0.1:{server.server_port}"


@pytest.mark.slow
def test_three_corpora_from_a_folder_an_http_archive_and_own_text(tiny_mirror, served, tmp_path):
    ptb_folder, ptb_digests = tiny_mirror
    www, url = served
    digest = wikitext_like(www)
    own_text(tmp_path / "mine")
    corpora = {
        "ptb": {"url": str(ptb_folder),  # a plain folder, as the README's example
                "digests": {s: f"sha256:{d}" for s, d in ptb_digests.items()}},
        "wt": {"url": url, "archive": "wt.zip", "digests": {"archive": f"sha256:{digest}"},
               "files": {s: f"corpus/wiki.{s}.tokens" for s in SPLITS},
               "prompts": ["The game", "It was"]},
        "mine": {"url": str(tmp_path / "mine"),
                 "files": {"train": "a.txt", "valid": "b.txt", "test": "c.txt"},
                 "prompts": ["word1 word2", "zebra"]},
    }
    experiments = {name: {**TINY, "corpus": name} for name in corpora}
    workdir = write_config(tmp_path / "work", ptb_folder, ptb_digests, corpora=corpora,
                           modes=["lstm"], run=list(corpora), experiments=experiments,
                           predict={"top_k": 3})  # each corpus's own prompts
    snakemake(workdir, "--cores", "2")
    for name in corpora:
        assert sorted(p.name for p in (workdir / "resources" / name).iterdir()) == [
            "source.json", "test.txt", "train.txt", "valid.txt"]
    stats = {name: json.loads((workdir / f"results/data/{name}/stats.json").read_text())
             for name in corpora}
    # wt: its 10 words, <unk>, the headings' = and Heading, and <eos>; mine: 15 words and <eos>
    assert (stats["ptb"]["vocab_size"], stats["wt"]["vocab_size"]) == (21, 14)
    assert stats["mine"]["vocab_size"] == 16 and not stats["mine"]["has_unk"]
    table = pd.read_csv(workdir / "results/perplexity.csv")
    assert dict(zip(table["experiment"], table["corpus"], strict=True)) == {
        name: name for name in corpora}
    compared = pd.read_csv(workdir / "results/comparisons.csv")
    assert compared.empty  # one mode each, and experiments never compare across corpora
    predictions = (workdir / "results/predictions.md").read_text()
    assert "## wt: 14-word vocabulary" in predictions and "### `The game`" in predictions
    assert "## mine: 16-word vocabulary" in predictions
    # no <unk> in the user's text: the prompt cannot be read, which is said, and the run goes on
    assert "Cannot be read: prompt 'zebra': word 'zebra' not in the vocabulary" in predictions
    assert "## ptb: 21-word vocabulary" in predictions and "### `the company said`" in predictions
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    assert "predictions.html" in set(re.findall(r'"filename": "([^"]+)"', html))
    assert "corpora: ptb, wt, mine" in html  # the report's config section names each corpus
    provenance = pd.read_csv(workdir / "results/provenance.csv")  # and where each was read
    assert dict(zip(provenance["corpus"], provenance["download.url"], strict=True)) == {
        name: corpora[name]["url"] for name in corpora}
    assert provenance["download.read.test"].iloc[1].endswith("wt.zip:corpus/wiki.test.tokens")
