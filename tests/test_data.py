"""Download stage through `rnnlm download`: three files, an archive's members or one file split by
the rule; every digest checked, nothing half written, one-line errors naming corpus, file, fix."""

import hashlib
import io
import json
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    REPO,
    SPLITS,
    QuietHandler,
    http_server,
    rnnlm,
    unreachable_url,
    write_corpus,
)

from rnnlm.data import Source, split_lines
from rnnlm.io import RnnlmError, iter_lines
from rnnlm.provenance import code_digest

CORPORA = REPO / "workflow" / "corpora"
PTB_FILES = [f"ptb.{s}.txt" for s in SPLITS]


def digest(path, algo="sha256"):
    return f"{algo}:{hashlib.new(algo, Path(path).read_bytes()).hexdigest()}"


def download(out, url, *shape, corpus="tiny", digests=(), retries=None):
    """`rnnlm download` as a rule runs it; its exit code, stdout and stderr."""
    args = ["download", "--corpus", corpus, "--url", url, *shape, "--out-dir", out]
    if digests:
        args += ["--digest", *(f"{key}={value}" for key, value in digests)]
    if retries:
        args += ["--retries", retries]
    return rnnlm(*args)


def definition_flags(name):
    """The flags of `rnnlm download` that a corpus definition file stands for."""
    spec = yaml.safe_load((CORPORA / f"{name}.yaml").read_text())
    flags = ["--files", *(spec["files"][s] for s in SPLITS)] if spec["files"] else []
    flags += ["--archive", spec["archive"]] if spec["archive"] else []
    flags += ["--file", spec["file"]] if spec["file"] else []
    return flags, list(spec["digests"].items())


def error_line(result):
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("rnnlm download: error: corpus "), lines[-1]
    return lines[-1]


WRITTEN = ["source.json", "test.txt", "train.txt", "valid.txt"]  # the splits and the record


def written(out):
    return sorted(p.name for p in Path(out).iterdir()) if Path(out).exists() else []


def wikitext_archive(folder, kind="zip", lines=(60, 12, 12)):
    """A WikiText-style archive (members wikitext-2/wiki.SPLIT.tokens: headings, paragraphs,
    blank lines between) and the members' texts."""
    texts = {}
    for split, n in zip(SPLITS, lines, strict=True):
        body = "".join(f" = Heading {i} = \n \n w{i % 7} , w{i % 5} @-@ <unk> . \n \n"
                       for i in range(n))
        texts[f"wikitext-2/wiki.{split}.tokens"] = body.encode()
    path = Path(folder) / f"wikitext-2-v1.{'zip' if kind == 'zip' else 'tar.gz'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in texts.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz") as tf:
            for name, data in texts.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path, texts


WIKI_FILES = ["--files", *(f"wikitext-2/wiki.{s}.tokens" for s in SPLITS)]


# --- three files ---------------------------------------------------------------------------------

def test_three_files_from_a_directory_and_a_file_url(corpus, tmp_path):
    mirror, sha256 = corpus
    for url, out in ((str(mirror), tmp_path / "a"), (mirror.as_uri(), tmp_path / "b")):
        result = download(out, url, "--files", *PTB_FILES,
                          digests=[(s, f"sha256:{sha256[s]}") for s in SPLITS])
        assert result.returncode == 0, result.stderr
        assert written(out) == WRITTEN
        for split in SPLITS:
            assert (out / f"{split}.txt").read_bytes() == (mirror / f"ptb.{split}.txt").read_bytes()
        record = json.loads((out / "source.json").read_text())  # what was read, for provenance
        assert record["url"] == url and record["sha256"] == sha256
        assert record["read"] == {s: str(mirror.resolve() / f"ptb.{s}.txt") for s in SPLITS}
        assert record["code"] == code_digest("data")


def test_ptb_definition_verifies_the_shared_copy(shared_ptb, tmp_path):
    """workflow/corpora/ptb.yaml's digests are those of the verified copy: PTB as before."""
    flags, digests = definition_flags("ptb")
    sums = dict(line.split()[::-1] for line in (shared_ptb / "SHA256SUMS").read_text().splitlines())
    assert dict(digests) == {s: f"sha256:{sums[f'ptb.{s}.txt']}" for s in SPLITS}
    result = download(tmp_path / "ptb", shared_ptb.as_uri(), *flags, corpus="ptb", digests=digests)
    assert result.returncode == 0, result.stderr
    for split in SPLITS:
        assert digest(tmp_path / "ptb" / f"{split}.txt") == dict(digests)[split]


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "remove"])
def test_a_bad_file_leaves_nothing(corpus, tmp_path, damage):
    mirror, sha256 = corpus
    bad = mirror / "ptb.test.txt"
    if damage == "corrupt":
        bad.write_bytes(bad.read_bytes().replace(b"w1", b"w2", 1))
    elif damage == "truncate":
        bad.write_bytes(bad.read_bytes()[:-50])
    else:
        bad.unlink()
    out = tmp_path / "out"
    result = download(out, str(mirror), "--files", *PTB_FILES,
                      digests=[(s, f"sha256:{sha256[s]}") for s in SPLITS])
    line = error_line(result)
    assert line.startswith("rnnlm download: error: corpus tiny: ") and "ptb.test.txt" in line
    if damage == "remove":
        assert "no such file at the mirror; set corpora.tiny.url (or --url)" in line
        assert "holding ptb.train.txt, ptb.valid.txt, ptb.test.txt" in line
    else:
        assert f"checksum mismatch (expected sha256 {sha256['test']}, got " in line
        assert "replace it at the mirror or fix corpora.tiny.digests.test" in line
    assert written(out) == []  # not even the two good files, nor a temporary


def test_sha1_digests_and_files_taken_as_they_are(corpus, tmp_path):
    mirror, _ = corpus
    sha1 = [(s, digest(mirror / f"ptb.{s}.txt", "sha1")) for s in SPLITS]
    assert download(tmp_path / "a", str(mirror), "--files", *PTB_FILES,
                    digests=sha1).returncode == 0
    assert download(tmp_path / "b", str(mirror), "--files", *PTB_FILES).returncode == 0
    wrong = [("valid", "sha1:" + "0" * 40)]
    line = error_line(download(tmp_path / "c", str(mirror), "--files", *PTB_FILES, digests=wrong))
    assert f"checksum mismatch (expected sha1 {'0' * 40}, got {sha1[1][1][5:]})" in line


def test_a_text_folder_missing_a_split_names_it(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.txt").write_text("some text\n")
    (folder / "b.txt").write_text("more text\n")
    line = error_line(download(tmp_path / "out", str(folder), "--files", "a.txt", "b.txt",
                               "c.txt", corpus="mine"))
    assert line.startswith(f"rnnlm download: error: corpus mine: {folder / 'c.txt'}: no such file")
    assert "set corpora.mine.url (or --url) to a directory" in line
    assert written(tmp_path / "out") == []


def test_an_empty_split_is_refused_at_download(tmp_path):
    folder = tmp_path / "mine"
    write_corpus(folder)
    (folder / "ptb.valid.txt").write_text("\n  \n")
    line = error_line(download(tmp_path / "out", str(folder), "--files", *PTB_FILES,
                               corpus="mine"))
    assert f"corpus mine: {folder / 'ptb.valid.txt'}: valid split is empty (no tokens)" in line
    assert written(tmp_path / "out") == []


# --- archives --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_wikitext_style_archive_is_verified_and_extracted(tmp_path, kind):
    archive, texts = wikitext_archive(tmp_path / "mirror", kind)
    members = {f"wiki.{s}.tokens": f"wikitext-2/wiki.{s}.tokens" for s in SPLITS}
    digests = [("archive", digest(archive)),
               *((s, f"sha1:{hashlib.sha1(texts[members[f'wiki.{s}.tokens']]).hexdigest()}")
                 for s in SPLITS)]
    out = tmp_path / "resources" / "wikitext-2"
    result = download(out, (tmp_path / "mirror").as_uri(), *WIKI_FILES, "--archive",
                      archive.name, corpus="wikitext-2", digests=digests)
    assert result.returncode == 0, result.stderr
    assert written(out) == WRITTEN  # no archive left behind
    for split in SPLITS:
        assert (out / f"{split}.txt").read_bytes() == texts[f"wikitext-2/wiki.{split}.tokens"]
    read = json.loads((out / "source.json").read_text())["read"]  # the member of which archive
    assert read["test"] == f"{archive.resolve()}:wikitext-2/wiki.test.tokens"


def test_a_wikitext_archive_through_the_data_stages(tmp_path):
    """download, vocab and batchify of a generated WikiText-style zip, as the rules chain them."""
    archive, texts = wikitext_archive(tmp_path / "mirror")
    out = tmp_path / "resources" / "wikitext-2"
    assert download(out, str(tmp_path / "mirror"), *WIKI_FILES, "--archive", archive.name,
                    corpus="wikitext-2", digests=[("archive", digest(archive))]).returncode == 0
    data = tmp_path / "results" / "data" / "wikitext-2"
    assert rnnlm("vocab", *(f"--{s}={out / f'{s}.txt'}" for s in SPLITS), "--vocab",
                 data / "vocab.tsv", "--stats", data / "stats.json").returncode == 0
    stats = json.loads((data / "stats.json").read_text())
    assert stats["train"]["lines"] == 120  # headings and paragraphs; blank lines are no lines
    assert stats["train"]["tokens"] == 60 * 5 + 60 * 7 and stats["valid"]["oov"] == 0
    assert rnnlm("batchify", "--corpus", out / "train.txt", "--vocab", data / "vocab.tsv",
                 "--batch-size", "4", "--out", data / "train.b4.npy").returncode == 0
    assert np.load(data / "train.b4.npy").shape == (stats["train"]["tokens"] // 4, 4)


def test_the_builtin_definitions_are_well_formed():
    """Each file of workflow/corpora makes a Source; WikiText's are its archives' members."""
    for path in sorted(CORPORA.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        assert set(spec) == {"url", "files", "archive", "file", "split", "digests", "vocab",
                             "blank_lines", "prompts"}, path
        source = Source(path.stem, spec["url"], files=spec["files"], archive=spec["archive"],
                        file=spec["file"], split=(spec["split"]["valid"], spec["split"]["test"]),
                        digests=spec["digests"])
        assert source.digests and spec["prompts"], path
    for name in ("wikitext-2", "wikitext-103"):
        flags, digests = definition_flags(name)
        assert flags == ["--files", *(f"{name}/wiki.{s}.tokens" for s in SPLITS),
                         "--archive", f"{name}-v1.zip"]
        assert sorted(dict(digests)) == ["archive", "test", "train", "valid"]
    wikitext = {name: yaml.safe_load((CORPORA / f"{name}.yaml").read_text())
                for name in ("wikitext-2", "wikitext-2-eos")}
    assert wikitext["wikitext-2"].pop("blank_lines") == "skip"  # otherwise the same corpus
    assert wikitext["wikitext-2-eos"].pop("blank_lines") == "eos"
    assert wikitext["wikitext-2"] == wikitext["wikitext-2-eos"]


@pytest.mark.parametrize("damage", ["archive digest", "member digest", "member missing",
                                    "not an archive", "archive missing"])
def test_a_bad_archive_leaves_nothing(tmp_path, damage):
    archive, _ = wikitext_archive(tmp_path / "mirror")
    sha256 = digest(archive)
    digests = [("archive", sha256)]
    files = WIKI_FILES
    if damage == "archive digest":
        digests = [("archive", "sha256:" + "1" * 64)]
    elif damage == "member digest":
        digests.append(("test", "sha1:" + "2" * 40))
    elif damage == "member missing":
        files = [*WIKI_FILES[:3], "wikitext-2/wiki.test.txt"]
    elif damage == "not an archive":
        archive.write_bytes(b"<html>moved</html>\n")
        digests = []
    else:
        archive.unlink()
    out = tmp_path / "out"
    line = error_line(download(out, str(tmp_path / "mirror"), *files, "--archive", archive.name,
                               corpus="wikitext-2", digests=digests))
    assert line.startswith(f"rnnlm download: error: corpus wikitext-2: {archive}")
    expected = {
        "archive digest": f"checksum mismatch (expected sha256 {'1' * 64}, got {sha256[7:]}); ",
        "member digest": f"{archive}:wikitext-2/wiki.test.tokens: checksum mismatch",
        "member missing": "has no member wikitext-2/wiki.test.txt (it holds "
                          "wikitext-2/wiki.train.tokens, wikitext-2/wiki.valid.tokens, "
                          "wikitext-2/wiki.test.tokens); set corpora.wikitext-2.files",
        "not an archive": "not a .zip or .tar.gz archive; replace it at the mirror or fix "
                          "corpora.wikitext-2.archive",
        "archive missing": "no such file at the mirror; set corpora.wikitext-2.url (or --url) "
                           "to a directory, file:// or http(s):// URL holding wikitext-2-v1.zip",
    }[damage]
    assert expected in line
    assert written(out) == []


# --- one file, split by the rule -------------------------------------------------------------

def test_one_file_is_cut_by_the_stated_rule(tmp_path):
    """Of 40 non-blank lines, the last 4 are test, the 8 before them valid, the rest train;
    blank lines stay where they fall and the three parts are the text again."""
    lines = [f"line {i} of my text\n" + ("\n" if i % 10 == 9 else "") for i in range(40)]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "book.txt").write_text("".join(lines))
    out = tmp_path / "out"
    result = download(out, str(tmp_path / "mine"), "--file", "book.txt", "--split", "0.2", "0.1",
                      corpus="book", digests=[("file", digest(tmp_path / "mine" / "book.txt"))])
    assert result.returncode == 0, result.stderr
    parts = {s: (out / f"{s}.txt").read_text() for s in SPLITS}
    assert "".join(parts[s] for s in SPLITS) == "".join(lines)
    non_blank = {s: [x for x in parts[s].splitlines() if x] for s in SPLITS}
    assert non_blank["train"] == [f"line {i} of my text" for i in range(28)]
    assert non_blank["valid"] == [f"line {i} of my text" for i in range(28, 36)]
    assert non_blank["test"] == [f"line {i} of my text" for i in range(36, 40)]


@pytest.mark.parametrize("ends", [b"\r", b"\r\n"], ids=["cr", "crlf"])
def test_one_file_with_cr_or_crlf_line_ends_is_cut_by_its_lines(tmp_path, ends):
    """A lone \\r ends a line as the vocab stage reads it: a classic Mac OS file was one line,
    too few to split. Its bytes, line ends included, go to the splits unchanged."""
    lines = [f"line {i} of my text".encode() + ends + (ends if i % 10 == 9 else b"")
             for i in range(40)]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "book.txt").write_bytes(b"".join(lines))
    out = tmp_path / "out"
    result = download(out, str(tmp_path / "mine"), "--file", "book.txt", "--split", "0.2", "0.1",
                      corpus="book", digests=[("file", digest(tmp_path / "mine" / "book.txt"))])
    assert result.returncode == 0, result.stderr
    parts = {s: (out / f"{s}.txt").read_bytes() for s in SPLITS}
    assert b"".join(parts[s] for s in SPLITS) == b"".join(lines)
    assert [len([x for x in parts[s].splitlines() if x]) for s in SPLITS] == [28, 8, 4]


def test_lines_are_whole_whatever_the_read_size_even_between_a_cr_and_its_lf():
    data = b"a\r\nbb\rccc\n\r\r\n\nd\r"
    for size in range(1, len(data) + 2):
        assert list(iter_lines(io.BytesIO(data), size)) == [
            b"a\r\n", b"bb\r", b"ccc\n", b"\r", b"\r\n", b"\n", b"d\r"]


def test_a_file_too_short_to_split_says_so(tmp_path):
    (tmp_path / "book.txt").write_text("one\ntwo\n\nthree\n")
    line = error_line(download(tmp_path / "out", str(tmp_path), "--file", "book.txt",
                               corpus="book"))
    assert ("3 non-blank lines are too few to give valid 0.1 and test 0.1 of them at least one "
            "line each; add text, or raise corpora.book.split") in line
    assert written(tmp_path / "out") == []


def test_split_lines_keeps_the_order_of_a_long_text(tmp_path):
    text = "".join(f"{i}\n" for i in range(1000))
    (tmp_path / "t.txt").write_text(text)
    dests = {s: tmp_path / f"{s}.out" for s in SPLITS}
    source = Source("t", str(tmp_path), file="t.txt", split=(0.15, 0.05))
    split_lines(source, tmp_path / "t.txt", "t.txt", dests)
    sizes = [len(dests[s].read_text().splitlines()) for s in SPLITS]
    assert sizes == [800, 150, 50]


# --- the definition itself ---------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"files": dict(zip(SPLITS, "abc", strict=True)), "file": "x"},
     "give either files (train, valid, test) or file"),
    ({"files": {"train": "a", "valid": "b"}}, "files must name train, valid and test"),
    ({"file": "x", "archive": "y.zip"}, "archive holds files; it cannot be used with file"),
    ({"file": "x", "split": (0.5, 0.5)}, "split fractions valid 0.5 and test 0.5 must be > 0"),
    ({"file": "x", "digests": {"train": "sha256:" + "0" * 64}},
     "digest 'train': this corpus can have digests of file"),
    ({"file": "x", "digests": {"file": "md5:abc"}}, "digest file: 'md5:abc' is not ALGO:HEX"),
    ({"file": "x", "digests": {"file": "sha256:abc"}}, "is not ALGO:HEX"),
])
def test_a_bad_definition_names_the_corpus(kwargs, problem):
    with pytest.raises(RnnlmError, match="^corpus c: ") as err:
        Source("c", "/somewhere", **kwargs)
    assert problem in str(err.value)


def test_an_unknown_url_scheme_is_an_error(tmp_path):
    line = error_line(download(tmp_path / "out", "ftp://h/x", "--files", *PTB_FILES))
    assert "unsupported URL scheme 'ftp' in 'ftp://h/x'; use http(s)://, file:// or a " in line


# --- over HTTP: retries counted and spaced (issue 18) ------------------------------------------

class _FlakyHandler(QuietHandler):
    """Serves a folder, failing the first ``fail`` requests with 503 or a truncated body, and
    notes when each request came."""

    def do_GET(self):
        state = self.server.state
        state["times"].append(time.monotonic())
        if len(state["times"]) <= state["fail"]:
            if state["mode"] == "503":
                self.send_error(503)
            else:  # promise more bytes than are sent: a truncated transfer
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"w1 w2")
            return
        super().do_GET()


@pytest.fixture
def http_mirror(corpus):
    """The generated corpus (and a WikiText-style zip) served on 127.0.0.1."""
    mirror, sha256 = corpus
    wikitext_archive(mirror)
    with http_server(mirror, _FlakyHandler) as server:
        server.state = {"times": [], "fail": 0, "mode": "503"}
        yield f"http://127.0.0.1:{server.server_port}", mirror, sha256, server.state


def gaps(times):
    return [b - a for a, b in zip(times, times[1:], strict=False)]


@pytest.mark.parametrize(("mode", "fail"), [("503", 2), ("truncated", 1)])
def test_a_transient_failure_recovers_after_spaced_attempts(http_mirror, tmp_path, mode, fail):
    url, _, sha256, state = http_mirror
    state.update(fail=fail, mode=mode)
    out = tmp_path / "out"
    result = download(out, url, "--files", *PTB_FILES, retries=3,
                      digests=[(s, f"sha256:{sha256[s]}") for s in SPLITS])
    assert result.returncode == 0, result.stderr
    assert len(state["times"]) == fail + 3  # train's failures, its success, valid, test
    waits = gaps(state["times"])[:fail]
    assert all(wait >= 0.9 * 2 ** i for i, wait in enumerate(waits))  # 1 s, then 2 s
    for attempt in range(1, fail + 1):
        assert f"(attempt {attempt} of 3), retrying in {2 ** (attempt - 1)} s" in result.stderr
    assert written(out) == WRITTEN


@pytest.mark.parametrize("retries", [1, 3])
def test_a_lasting_failure_stops_after_the_attempts_it_counted(http_mirror, tmp_path, retries):
    url, _, _, state = http_mirror
    state.update(fail=100)
    out = tmp_path / "out"
    line = error_line(download(out, url, "--files", *PTB_FILES, retries=retries))
    assert len(state["times"]) == retries
    assert all(gap >= 0.9 * 2 ** i for i, gap in enumerate(gaps(state["times"])))
    noun = "attempt" if retries == 1 else "attempts"
    assert (f"cannot download {url}/ptb.train.txt (HTTP 503) after {retries} {noun}; offline? "
            "set corpora.tiny.url (or --url)") in line
    assert written(out) == []


def test_http_404_is_immediate_and_names_the_file(http_mirror, tmp_path):
    url, _, _, state = http_mirror
    line = error_line(download(tmp_path / "out", url + "/nowhere", "--files", *PTB_FILES))
    assert f"corpus tiny: {url}/nowhere/ptb.train.txt: HTTP 404 File not found; set" in line
    assert len(state["times"]) == 1
    assert written(tmp_path / "out") == []


def test_an_archive_over_http_is_fetched_verified_and_removed(http_mirror, tmp_path):
    url, mirror, _, state = http_mirror
    archive = mirror / "wikitext-2-v1.zip"
    out = tmp_path / "out"
    result = download(out, url, *WIKI_FILES, "--archive", archive.name,
                      digests=[("archive", digest(archive))])
    assert result.returncode == 0, result.stderr
    assert len(state["times"]) == 1 and written(out) == WRITTEN


def test_offline_says_how_to_set_a_mirror(tmp_path):
    line = error_line(download(tmp_path / "out", unreachable_url(), "--files",
                               *PTB_FILES, corpus="ptb", retries=1))
    assert "after 1 attempt; offline? set corpora.ptb.url (or --url)" in line
    assert written(tmp_path / "out") == []
