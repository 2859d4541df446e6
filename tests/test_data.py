"""Download stage: every file verified by SHA-256, nothing half-done left behind, clear errors."""

import functools
import hashlib
import http.server
import threading

import pytest

from rnnlm.cli import main
from rnnlm.data import PUBLISHED_SHA256, SPLITS, download, source_of
from rnnlm.io import RnnlmError


def test_download_from_directory_and_file_url(corpus, tmp_path):
    mirror, digests = corpus
    for base, out in ((str(mirror), tmp_path / "a"), (mirror.as_uri(), tmp_path / "b")):
        paths = download(base, out, sha256=digests)
        assert [p.name for p in paths] == [f"ptb.{s}.txt" for s in SPLITS]
        for split, path in zip(SPLITS, paths, strict=True):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digests[split]
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


def test_shared_ptb_mirror_matches_published_sums(shared_ptb, tmp_path):
    out = tmp_path / "ptb"
    assert main(["download", "--url", shared_ptb.as_uri(), "--out-dir", str(out)]) == 0
    sums = dict(line.split()[::-1] for line in (shared_ptb / "SHA256SUMS").read_text().splitlines())
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert PUBLISHED_SHA256 == {s: sums[f"ptb.{s}.txt"] for s in SPLITS}


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "remove"])
def test_bad_mirror_file_leaves_nothing(corpus, tmp_path, damage, capsys):
    mirror, digests = corpus
    bad = mirror / "ptb.test.txt"
    if damage == "corrupt":
        bad.write_bytes(bad.read_bytes().replace(b"w1", b"w2", 1))
    elif damage == "truncate":
        bad.write_bytes(bad.read_bytes()[:-50])
    else:
        bad.unlink()
    out = tmp_path / "out"
    args = ["download", "--url", str(mirror), "--out-dir", str(out), "--sha256",
            *(digests[s] for s in SPLITS)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ptb.test.txt" in err
    assert ("no such file" in err) if damage == "remove" else (digests["test"] in err)
    assert list(out.iterdir()) == []  # not even the two good files, nor a temporary


def test_wrong_expected_checksum_names_both_digests(corpus, tmp_path):
    mirror, digests = corpus
    with pytest.raises(RnnlmError, match=f"expected sha256 {'0' * 64}, got {digests['train']}"):
        download(str(mirror), tmp_path, sha256={**digests, "train": "0" * 64})


class _FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror, failing the first ``fail`` requests with 503 or a truncated body."""

    def do_GET(self):
        state = self.server.state
        state["requests"] += 1
        if state["requests"] <= state["fail"]:
            if state["mode"] == "503":
                self.send_error(503)
            else:  # promise more bytes than we send: a truncated transfer
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"w1 w2")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(corpus):
    mirror, digests = corpus
    handler = functools.partial(_FlakyHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.state = {"requests": 0, "fail": 0, "mode": "503"}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", digests, server.state
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", ["503", "truncated"])
def test_http_download_retries_transient_failures(http_mirror, tmp_path, mode):
    url, digests, state = http_mirror
    state.update(fail=1, mode=mode)
    download(url, tmp_path / "out", sha256=digests, retries=2, timeout=5)
    assert state["requests"] == 4  # one failure, then the three files
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"ptb.{s}.txt" for s in
                                                                    sorted(SPLITS)]


def test_http_404_is_immediate_and_names_the_file(http_mirror, tmp_path):
    url, digests, state = http_mirror
    with pytest.raises(RnnlmError, match=r"ptb.train.txt: HTTP 404.*data.url"):
        download(url + "/nowhere", tmp_path / "out", sha256=digests, retries=3)
    assert state["requests"] == 1
    assert list((tmp_path / "out").iterdir()) == []


def test_offline_says_how_to_set_a_mirror(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["download", "--url", f"http://127.0.0.1:{port}/ptb", "--out-dir",
                 str(tmp_path / "out"), "--retries", "1"]) == 1
    err = capsys.readouterr().err
    assert "offline?" in err and "data.url" in err and "after 1 attempts" in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_source_of_understands_the_three_forms(tmp_path):
    assert source_of("https://h/x/", "f") == "https://h/x/f"
    assert source_of(tmp_path.as_uri(), "f") == tmp_path / "f"
    assert source_of(str(tmp_path), "f") == tmp_path / "f"
    with pytest.raises(RnnlmError, match="unsupported URL scheme 'ftp'"):
        source_of("ftp://h/x", "f")
