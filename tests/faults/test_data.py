"""Data faults through `snakemake`: a bad mirror or corpus stops the stage that meets it with
one line naming the file and the fix, and leaves no partial output, only what was done before."""

import hashlib
import os
import shutil
import subprocess
import zipfile

import pytest
import yaml
from conftest import REPO, SPLITS, unreachable_url, write_corpus
from test_workflow import BIN, SNAKEMAKE

from faults.pipeline import (
    MESSAGES,
    copy_workdir,
    error_line,
    run_failing,
    stray_temporaries,
    tiny_workflow,
)

ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # `rnnlm` for jobs

CORPUS = [f"{s}.txt" for s in SPLITS]  # the download stage's outputs in resources/<corpus>/
DOWNLOAD_LOG = "results/logs/download/ptb.log"


def bad_mirror(tmp_path, damage):
    """A mirror and the digests config.yaml expects, with one kind of damage."""
    mirror = tmp_path / "mirror"
    digests = write_corpus(mirror, lines_per_split=(300, 60, 60))
    valid = mirror / "ptb.valid.txt"
    if damage == "missing file":
        valid.unlink()
    elif damage == "truncated file":
        valid.write_bytes(valid.read_bytes()[:-100])
    elif damage == "checksum mismatch":
        valid.write_bytes(valid.read_bytes().replace(b"w1", b"w2", 1))
    return mirror, digests


def no_download_left(workdir, corpus="ptb"):
    folder = workdir / "resources" / corpus
    return not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize("damage", ["missing file", "truncated file", "checksum mismatch"])
def test_bad_mirror_file_stops_the_download_and_leaves_no_file(tmp_path, damage):
    workdir = tiny_workflow(tmp_path / "work", *bad_mirror(tmp_path, damage))
    error = run_failing(workdir, DOWNLOAD_LOG)
    assert error.startswith("rnnlm download: error: corpus ptb: ") and "ptb.valid.txt" in error
    assert MESSAGES[damage] in error
    assert no_download_left(workdir)  # not even the two good splits


def test_unreachable_mirror_says_offline_and_how_to_set_one(tmp_path, tiny_mirror):
    url = unreachable_url()
    workdir = tiny_workflow(tmp_path, *tiny_mirror)
    error = run_failing(workdir, DOWNLOAD_LOG, "--config", f"corpora={{ptb: {{url: '{url}'}}}}")
    assert MESSAGES["mirror unreachable"] in error
    assert f"{url}/ptb.train.txt" in error
    assert no_download_left(workdir)


def repository_copy(folder):
    """The workflow as a clone holds it (Snakefile, workflow/, profiles/, src/), to run it from
    its root as a user does without writing in this repository."""
    folder.mkdir()
    shutil.copy(REPO / "Snakefile", folder / "Snakefile")
    for tree in ("workflow", "profiles", "src"):
        shutil.copytree(REPO / tree, folder / tree, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.mark.parametrize("layout", ["from the repository root", "-s and --directory"])
def test_a_failed_jobs_one_line_error_reaches_the_terminal(tmp_path, tiny_mirror, layout):
    """Offline, a plain `snakemake --cores all` shows the failed job's log on the terminal
    (profiles/default sets show-failed-logs), so its last line, the one that says what to do,
    is there and not only in results/logs/. Found from the repository root, where a user runs
    it, and beside the Snakefile, as tests run it from elsewhere."""
    if layout == "from the repository root":
        cwd = workdir = tiny_workflow(repository_copy(tmp_path / "clone"), *tiny_mirror)
        where = []
    else:
        cwd, workdir = tmp_path, tiny_workflow(tmp_path / "work", *tiny_mirror)
        where = ["-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    result = subprocess.run([str(SNAKEMAKE), *where, "--cores", "all", "--config",
                             f"corpora={{ptb: {{url: '{unreachable_url()}'}}}}"], cwd=cwd, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    error = error_line((workdir / DOWNLOAD_LOG).read_text())
    assert error.startswith("rnnlm download: error: ") and MESSAGES["mirror unreachable"] in error
    assert error in (result.stdout + result.stderr).splitlines(), result.stderr[-3000:]


def corpus_with(tmp_path, split, text):
    """The generated corpus with one split replaced by ``text``; digests that match it."""
    mirror = tmp_path / "mirror"
    write_corpus(mirror, lines_per_split=(300, 60, 60))
    (mirror / f"ptb.{split}.txt").write_bytes(text)
    return mirror, {s: hashlib.sha256((mirror / f"ptb.{s}.txt").read_bytes()).hexdigest()
                    for s in SPLITS}


def test_bad_corpus_text_stops_the_vocab_naming_the_file(tmp_path):
    workdir = tiny_workflow(tmp_path / "work", *corpus_with(
        tmp_path, "valid", b" w1 w2 \n w3 \n w4 w5 caf\xe9 \n"))
    error = run_failing(workdir, "results/logs/vocab/ptb.log", "results/data/ptb/vocab.tsv")
    assert error.startswith("rnnlm vocab: error: resources/ptb/valid.txt: ")
    assert MESSAGES["non-UTF-8 corpus"] in error
    assert not (workdir / "results" / "data" / "ptb").exists()  # neither vocab.tsv nor stats
    assert all((workdir / "resources/ptb" / name).is_file() for name in CORPUS)  # kept
    assert not stray_temporaries(workdir)


def test_an_empty_split_stops_the_download(tmp_path):
    workdir = tiny_workflow(tmp_path / "work", *corpus_with(tmp_path, "test", b"\n  \n"))
    error = run_failing(workdir, DOWNLOAD_LOG)
    assert error.startswith("rnnlm download: error: corpus ptb: ") and "ptb.test.txt" in error
    assert MESSAGES["empty split"] in error
    assert no_download_left(workdir)


def test_a_split_of_other_words_stops_the_vocab(tmp_path):
    """A test split that shares no word with training: another language, or a broken split."""
    workdir = tiny_workflow(tmp_path / "work", *corpus_with(tmp_path, "test", b" x y z \n"))
    error = run_failing(workdir, "results/logs/vocab/ptb.log", "results/data/ptb/vocab.tsv")
    assert error.startswith("rnnlm vocab: error: resources/ptb/test.txt: ")
    assert MESSAGES["split of other words"] in error
    assert not (workdir / "results" / "data" / "ptb").exists()


def test_a_hand_edited_vocabulary_stops_batchify_naming_the_line(data_ready, tmp_path):
    """A word added twice to vocab.tsv by hand was a pandas InvalidIndexError in batchify; the
    edited file, being the user's, stays as it is."""
    workdir = tmp_path / "work"
    copy_workdir(data_ready, workdir)
    vocab = workdir / "results/data/ptb/vocab.tsv"
    rows = vocab.read_text().splitlines()
    word = rows[3].split("\t")[1]
    vocab.write_text("\n".join([*rows, f"{len(rows) - 1}\t{word}\t1"]) + "\n")
    edited = vocab.read_bytes()
    error = run_failing(workdir, "results/logs/batchify/ptb/train.b4.log",
                        "results/data/ptb/train.b4.npy")
    assert error == (f"rnnlm batchify: error: results/data/ptb/vocab.tsv: line {len(rows) + 1} "
                     f"repeats the word {word!r} of line 4; {MESSAGES['hand-edited vocabulary']}")
    assert vocab.read_bytes() == edited
    assert not (workdir / "results/data/ptb/train.b4.npy").exists()


def own_corpus(tmp_path, mirror, **definition):
    """The tiny workflow on corpus `mine`, defined by ``definition`` over ``mirror``."""
    workdir = tiny_workflow(tmp_path / "work", mirror, {}, corpus="mine")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["corpora"]["mine"] = {"url": str(mirror), **definition}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def test_a_text_folder_missing_a_split_names_corpus_file_and_fix(tmp_path):
    mirror = tmp_path / "texts"
    write_corpus(mirror)
    (mirror / "ptb.test.txt").rename(mirror / "ptb.tst.txt")
    workdir = own_corpus(tmp_path, mirror, files={s: f"ptb.{s}.txt" for s in SPLITS})
    error = run_failing(workdir, "results/logs/download/mine.log")
    assert error.startswith(f"rnnlm download: error: corpus mine: {mirror}/ptb.test.txt: ")
    assert MESSAGES["text folder missing a split"] in error
    assert no_download_left(workdir, "mine")


def archive_mirror(tmp_path, members):
    """A WikiText-style zip of the generated corpus with ``members`` of it; its sha256."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_corpus(tmp_path / "text")
    with zipfile.ZipFile(mirror / "corpus.zip", "w") as archive:
        for split in members:
            archive.write(tmp_path / "text" / f"ptb.{split}.txt", f"corpus/wiki.{split}.tokens")
    return mirror, "sha256:" + hashlib.sha256((mirror / "corpus.zip").read_bytes()).hexdigest()


@pytest.mark.parametrize("case", ["archive without a split", "archive digest mismatch"])
def test_a_bad_archive_names_corpus_file_and_fix(tmp_path, case):
    mirror, digest = archive_mirror(tmp_path, SPLITS if "digest" in case else SPLITS[:2])
    if "digest" in case:
        digest = "sha256:" + "0" * 64
    workdir = own_corpus(tmp_path, mirror, archive="corpus.zip", digests={"archive": digest},
                         files={s: f"corpus/wiki.{s}.tokens" for s in SPLITS})
    error = run_failing(workdir, "results/logs/download/mine.log")
    assert error.startswith("rnnlm download: error: corpus mine: ") and "corpus.zip" in error
    assert MESSAGES[case] in error
    assert no_download_left(workdir, "mine") and not list(mirror.glob(".*"))


def test_split_too_short_for_one_window_says_how_many_tokens(tmp_path):
    """Batch size 4, bptt 4: 20 tokens fill one window; 3 lines of 3 words + <eos> are 16."""
    workdir = tiny_workflow(tmp_path / "work", *corpus_with(
        tmp_path, "train", b" w1 w2 <unk> \n w3 w4 w5 \n w6 w7 w8 \n w9 w10 w11 \n"))
    error = run_failing(workdir, "results/logs/train/tiny/lstm/seed1.log", "train_all")
    assert error.startswith("rnnlm train: error: results/data/ptb/train.b4.npy: 16 tokens (4 "
                            "steps")
    assert MESSAGES["split too short"] in error
    run = workdir / "results" / "tiny" / "lstm" / "seed1"
    assert not run.exists() or list(run.iterdir()) == []
    for kept in ("vocab.tsv", "stats.json", "train.b4.npy", "valid.b2.npy"):
        assert (workdir / "results" / "data" / "ptb" / kept).is_file()
    assert not stray_temporaries(workdir)
