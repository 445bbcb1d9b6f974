"""Dataset download against a local HTTP server: extraction, resume with Range, corrupt archives, re-runs.

Everything is served from 127.0.0.1 by a server started in a thread; nothing leaves the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medsr.cli import app
from medsr.data.download import (
    NIH_CHESTXRAY14,
    DatasetSource,
    DownloadError,
    RemoteFile,
    download_dataset,
    extract_archive,
    fetch,
    get_source,
    marker_path,
    parse_parts,
    read_urls_file,
    verify_archive,
)
from medsr.errors import ConfigError

pytestmark = pytest.mark.timeout(120)


def _png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _part_members(part: int, count: int = 3) -> dict[str, bytes]:
    """NIH-style members: ``images/PPPPPPPP_NNN.png`` (the archives hold a top-level images/ folder)."""
    return {f"images/{part:08d}_{i:03d}.png": _png_bytes(100 * part + i) for i in range(count)}


class _Server:
    """A Range-aware static server over an in-memory dict, with optional cut-off first responses."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}  # name -> bytes sent before the first response is cut
        self.ranges = True  # False: ignore Range headers, always send the whole file
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                body, start = server.files[name], 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and server.ranges:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.cut_after.pop(name, None)
                self.wfile.write(body[start:] if cut is None else body[start : start + cut])
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def source(self, names: list[str], **kw) -> DatasetSource:
        return DatasetSource("test", tuple(RemoteFile(n, f"{self.url}/{n}", **kw) for n in names))

    def gets(self, name: str) -> list[str | None]:
        return [rng for n, rng in self.requests if n == name]


@pytest.fixture()
def server(monkeypatch) -> Iterator[_Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = _Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=10)


def _extracted(dest: Path) -> dict[str, bytes]:
    images = dest / "images"
    return {p.relative_to(images).as_posix(): p.read_bytes() for p in images.rglob("*") if p.is_file()}


def _net(**kw):
    """Bounded network settings for fetch(): short timeout, few retries, no sleeping."""
    return {"timeout": 10.0, "retries": 3, "backoff": 0.0, **kw}


def _fast(**kw):
    return _net(show_progress=False, **kw)


def test_full_download_and_extract(server, tmp_path):
    parts = {n: _part_members(n) for n in (1, 2)}
    for n, members in parts.items():
        server.files[f"images_{n:02d}.tar.gz"] = _tar_gz(members)
    source = server.source(["images_01.tar.gz", "images_02.tar.gz"])
    report = download_dataset(source, tmp_path / "nih", **_fast())
    assert report.completed == ["images_01.tar.gz", "images_02.tar.gz"] and not report.failures
    expected = {name.removeprefix("images/"): data for m in parts.values() for name, data in m.items()}
    assert _extracted(tmp_path / "nih") == expected  # top-level images/ folder not doubled
    assert marker_path(tmp_path / "nih", "images_01.tar.gz").is_file()
    assert not list((tmp_path / "nih" / "archives").iterdir())  # archives removed after extraction
    assert Image.open(tmp_path / "nih" / "images" / "00000002_001.png").size == (16, 16)


def test_only_chosen_parts_and_keep_archives(server, tmp_path):
    for n in (1, 2, 3):
        server.files[f"images_{n:02d}.tar.gz"] = _tar_gz(_part_members(n))
    source = server.source([f"images_{n:02d}.tar.gz" for n in (1, 2, 3)])
    report = download_dataset(source, tmp_path, parse_parts("2", 3), keep_archives=True, **_fast())
    assert report.completed == ["images_02.tar.gz"]
    assert [name for name, _ in server.requests] == ["images_02.tar.gz"]
    assert (tmp_path / "archives" / "images_02.tar.gz").read_bytes() == server.files["images_02.tar.gz"]
    assert set(_extracted(tmp_path)) == {f"00000002_{i:03d}.png" for i in range(3)}


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    data = _tar_gz(_part_members(1, count=6))
    server.files["images_01.tar.gz"] = data
    server.cut_after["images_01.tar.gz"] = 700  # the first response stops after 700 bytes
    target = fetch(server.source(["images_01.tar.gz"]).archives[0], tmp_path / "a.tar.gz", **_net())
    assert target.read_bytes() == data
    assert server.gets("images_01.tar.gz") == [None, "bytes=700-"]
    assert not (tmp_path / "a.tar.gz.part").exists()


def test_existing_part_file_is_resumed(server, tmp_path):
    data = _tar_gz(_part_members(4))
    server.files["images_01.tar.gz"] = data
    (tmp_path / "archives").mkdir()
    (tmp_path / "archives" / "images_01.tar.gz.part").write_bytes(data[:333])  # left by a killed run
    report = download_dataset(server.source(["images_01.tar.gz"]), tmp_path, keep_archives=True, **_fast())
    assert not report.failures
    assert server.gets("images_01.tar.gz") == ["bytes=333-"]
    assert (tmp_path / "archives" / "images_01.tar.gz").read_bytes() == data
    assert len(_extracted(tmp_path)) == 3


def test_complete_part_file_and_a_server_without_range_support(server, tmp_path):
    data = _tar_gz(_part_members(5))
    server.files["x.tar.gz"] = data
    remote = server.source(["x.tar.gz"]).archives[0]
    (tmp_path / "x.tar.gz.part").write_bytes(data)  # everything already there: the server answers 416
    assert fetch(remote, tmp_path / "x.tar.gz", **_net()).read_bytes() == data
    assert server.gets("x.tar.gz") == [f"bytes={len(data)}-"]
    (tmp_path / "x.tar.gz").unlink()
    (tmp_path / "x.tar.gz.part").write_bytes(b"stale bytes from elsewhere")
    server.ranges = (
        False  # the whole file comes back with 200: the partial file must be replaced, not extended
    )
    assert fetch(remote, tmp_path / "x.tar.gz", **_net()).read_bytes() == data


def test_known_size_or_checksum_mismatch_is_refused(server, tmp_path):
    data = _tar_gz(_part_members(6))
    server.files["x.tar.gz"] = data
    with pytest.raises(DownloadError, match="size"):
        fetch(
            RemoteFile("x.tar.gz", f"{server.url}/x.tar.gz", size=len(data) + 1),
            tmp_path / "x.tar.gz",
            **_net(),
        )
    with pytest.raises(DownloadError, match="sha256"):
        fetch(
            RemoteFile("x.tar.gz", f"{server.url}/x.tar.gz", sha256="0" * 64),
            tmp_path / "x.tar.gz",
            **_net(),
        )
    assert not (tmp_path / "x.tar.gz").exists() and not (tmp_path / "x.tar.gz.part").exists()
    good = RemoteFile(
        "x.tar.gz", f"{server.url}/x.tar.gz", size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    assert fetch(good, tmp_path / "x.tar.gz", **_net()).read_bytes() == data


def test_missing_file_fails_without_endless_retries(server, tmp_path):
    report = download_dataset(server.source(["images_09.tar.gz"]), tmp_path, **_fast())
    assert report.failures and "HTTP 404" in report.failures[0][1]
    assert len(server.requests) == 1  # a 404 is final


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_archive_is_reported_and_not_extracted(server, tmp_path, damage):
    good = _tar_gz(_part_members(1, count=8))
    bad = bytearray(good)
    if damage == "truncate":
        bad = bad[: len(bad) * 2 // 3]
    else:
        bad[len(bad) // 2] ^= 0xFF
    server.files["images_01.tar.gz"] = bytes(bad)
    server.files["images_02.tar.gz"] = _tar_gz(_part_members(2))
    source = server.source(["images_01.tar.gz", "images_02.tar.gz"])
    report = download_dataset(source, tmp_path, **_fast())
    assert [name for name, _ in report.failures] == ["images_01.tar.gz"]
    assert "corrupt archive" in report.failures[0][1] and "\n" not in report.failures[0][1]
    assert report.completed == ["images_02.tar.gz"]  # one bad archive does not stop the others
    assert set(_extracted(tmp_path)) == {f"00000002_{i:03d}.png" for i in range(3)}
    assert not marker_path(tmp_path, "images_01.tar.gz").exists()
    assert not (tmp_path / "archives" / "images_01.tar.gz").exists()  # deleted, a re-run fetches it again


def test_unsafe_members_are_refused(server, tmp_path):
    for name, members in {
        "dots.tar.gz": {"images/../../evil.png": b"x"},
        "abs.tar.gz": {"/tmp/evil.png": b"x"},
    }.items():
        server.files[name] = _tar_gz(members)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("images/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    server.files["link.tar.gz"] = buffer.getvalue()
    report = download_dataset(server.source(list(server.files)), tmp_path / "d", **_fast())
    assert len(report.failures) == 3 and all("unsafe" in reason for _, reason in report.failures)
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "d" / "images").exists()


def test_verify_archive_reads_to_the_gzip_trailer(tmp_path):
    data = _tar_gz(_part_members(1))
    path = tmp_path / "a.tar.gz"
    path.write_bytes(data)
    assert verify_archive(path) == (3, sum(len(v) for v in _part_members(1).values()))
    # Damage only the gzip trailer (CRC32 and length): every tar member still reads, the stream does not.
    path.write_bytes(data[:-8] + bytes(8))
    with pytest.raises(DownloadError, match="corrupt"):
        verify_archive(path)
    assert gzip.decompress(data)  # the reference archive itself is sound


def test_extraction_stops_at_the_member_size_limit(tmp_path):
    members = {"images/a.png": b"a" * 100, "images/big.png": b"b" * 5000, "images/c.png": b"c" * 100}
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz(members))
    dest = tmp_path / "out"
    with pytest.raises(DownloadError) as info:
        extract_archive(archive, dest, max_member_bytes=1000)
    message = str(info.value)
    assert "\n" not in message and "'images/big.png'" in message and "over the limit of 1000 bytes" in message
    files = {p.relative_to(dest).as_posix(): p.stat().st_size for p in dest.rglob("*") if p.is_file()}
    assert files == {"a.png": 100}  # nothing of the large member (not even a temporary file), nothing after it
    with pytest.raises(DownloadError, match=r"images/big\.png.*over the limit of 1000 bytes"):
        verify_archive(archive, max_member_bytes=1000)
    assert extract_archive(archive, tmp_path / "all", max_member_bytes=5000) == 3  # at the limit is fine


def test_extraction_stops_at_the_total_size_limit(tmp_path):
    members = {f"images/{i}.png": bytes([i]) * 400 for i in range(5)}
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_tar_gz(members))
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match=r"'images/2\.png' takes the archive over the limit of 1000 bytes"):
        extract_archive(archive, dest, max_total_bytes=1000)
    assert sorted(p.name for p in dest.rglob("*")) == ["0.png", "1.png"]
    assert sum(p.stat().st_size for p in dest.rglob("*")) <= 1000
    with pytest.raises(DownloadError, match="over the limit of 1000 bytes in total"):
        verify_archive(archive, max_total_bytes=1000)


def test_download_refuses_an_archive_over_the_limits(server, tmp_path):
    server.files["images_01.tar.gz"] = _tar_gz({"images/huge.png": b"x" * 3000})
    report = download_dataset(server.source(["images_01.tar.gz"]), tmp_path / "d", max_member_bytes=2000, **_fast())
    [(name, reason)] = report.failures
    assert name == "images_01.tar.gz" and "'images/huge.png'" in reason and "limit of 1.95 KiB" in reason
    assert not (tmp_path / "d" / "images").exists()
    assert not marker_path(tmp_path / "d", "images_01.tar.gz").exists()


def test_extracts_a_member_with_a_250_byte_name(tmp_path):
    name = "n" * 246 + ".png"
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(f"images/{name}")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert extract_archive(archive, tmp_path / "out") == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]


def test_rerun_is_a_no_op(server, tmp_path):
    server.files["images_01.tar.gz"] = _tar_gz(_part_members(1))
    source = server.source(["images_01.tar.gz"])
    download_dataset(source, tmp_path, **_fast())
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    server.requests.clear()
    report = download_dataset(source, tmp_path, **_fast())
    assert report.already_done == ["images_01.tar.gz"] and not report.completed and not report.failures
    assert server.requests == []  # nothing fetched
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()} == before


def test_cli_with_base_url_mirror(server, tmp_path):
    for n in (1, 2):
        server.files[f"images_{n:02d}.tar.gz"] = _tar_gz(_part_members(n))
    server.files["Data_Entry_2017.csv"] = b"Image Index,Patient ID\n00000001_000.png,1\n"
    args = ["download", "nih-chestxray14", str(tmp_path), "--base-url", server.url, "--parts", "1-2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(_extracted(tmp_path)) == 6
    assert (tmp_path / "Data_Entry_2017.csv").read_bytes() == server.files["Data_Entry_2017.csv"]
    server.requests.clear()
    assert CliRunner().invoke(app, args).exit_code == 0 and server.requests == []


def test_cli_reports_corrupt_archive_with_exit_1(server, tmp_path):
    server.files["broken.tar.gz"] = _tar_gz(_part_members(1))[:150]
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# a mirror\nbroken.tar.gz {server.url}/broken.tar.gz\n")
    result = CliRunner().invoke(
        app, ["download", "nih-chestxray14", str(tmp_path / "d"), "--urls-file", str(urls)]
    )
    assert result.exit_code == 1
    assert "broken.tar.gz" in result.output and "corrupt archive" in result.output
    assert not (tmp_path / "d" / "images").exists()


def test_configuration(tmp_path):
    assert len(NIH_CHESTXRAY14.archives) == 12
    assert NIH_CHESTXRAY14.archives[0].name == "images_01.tar.gz"
    assert all(a.url.startswith("https://") for a in NIH_CHESTXRAY14.archives)
    mirror = get_source("nih-chestxray14", base_url="https://mirror.example/nih/")
    assert mirror.archives[11].url == "https://mirror.example/nih/images_12.tar.gz"
    assert [f.name for f in mirror.files] == ["Data_Entry_2017.csv"] and not mirror.files[0].required
    assert parse_parts("1-3,7", 12) == [1, 2, 3, 7] and parse_parts("1-12", 12) == list(range(1, 13))
    for bad in ("0", "13", "3-1", "a"):
        with pytest.raises(ConfigError):
            parse_parts(bad, 12)
    with pytest.raises(ConfigError, match="unknown dataset"):
        get_source("imagenet")
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "images_01.tar.gz https://m.example/a?x=1 size=10 sha256=ab\nhttps://m.example/Data.csv\n"
    )
    files = read_urls_file(urls)
    assert files[0] == RemoteFile("images_01.tar.gz", "https://m.example/a?x=1", 10, "ab")
    assert files[1].name == "Data.csv" and not files[1].is_archive
    urls.write_text("a.tar.gz https://m.example/a colour=red\n")
    with pytest.raises(ConfigError, match="unknown option"):
        read_urls_file(urls)
