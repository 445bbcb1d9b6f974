"""Download public datasets: resumable HTTP transfers, archive verification, safe extraction.

The only dataset so far is NIH ChestX-ray14 (NIH Clinical Center; Wang et al., "ChestX-ray8", CVPR 2017):
112,120 frontal chest X-rays of 30,805 patients, 1024x1024 8-bit PNG, in 12 archives ``images_01.tar.gz`` ..
``images_12.tar.gz`` (about 42 GB) plus ``Data_Entry_2017.csv`` (labels and patient ids). Where the files
come from is configuration (:class:`DatasetSource`), so a mirror (``--base-url``) or an explicit list of
links (``--urls-file``) can replace the NIH's own.

Each file is fetched to ``NAME.part`` (resumed with an HTTP ``Range`` request after an interruption), checked
(size and checksum when known), renamed, then for archives read completely (gzip CRC and every tar member)
before anything is extracted. Members are written under ``DEST/images/``; absolute paths, ``..`` and links
are refused, and so are members over 2 GiB each or 100 GiB together (``max_member_bytes``,
``max_total_bytes``). A finished archive leaves a marker in ``DEST/.medsr-download/``, so a re-run skips it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import re
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import IO

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from medsr import __version__
from medsr.atomic import atomic_path
from medsr.errors import ConfigError, DownloadError, os_reason

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MARKER_DIR = ".medsr-download"
_CHUNK = 1 << 20
MAX_MEMBER_BYTES = 2 * 2**30
"""An archive member larger than this (2 GiB) is refused: no image of a dataset is near it."""
MAX_TOTAL_BYTES = 100 * 2**30
"""An archive that unpacks to more than this (100 GiB) is refused (NIH ChestX-ray14 is 45 GB in all)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: local ``name``, ``url``, and what is known to check it."""

    name: str
    url: str
    size: int | None = None  # bytes, when published
    sha256: str | None = None
    md5: str | None = None
    required: bool = True  # a missing optional file (HTTP 404) is a note, not a failure

    @property
    def is_archive(self) -> bool:
        return self.name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset's files are: archives (extracted into ``images/``) and plain files (kept as is)."""

    name: str
    archives: tuple[RemoteFile, ...]
    files: tuple[RemoteFile, ...] = ()
    homepage: str = ""
    strip_prefix: str = "images"  # leading folder of archive members, dropped so files land in DEST/images/
    mirror_files: tuple[str, ...] = ()  # files the host offers only on its web page; a mirror may hold them
    notes: tuple[str, ...] = ()  # printed after a run with these links (e.g. where to get a file by hand)

    def with_base_url(self, base_url: str) -> DatasetSource:
        """The same files, each fetched from ``{base_url}/{name}`` (a mirror with the same layout)."""
        base = base_url.rstrip("/")
        extra = tuple(RemoteFile(name, "", required=False) for name in self.mirror_files)
        return replace(
            self,
            archives=tuple(replace(f, url=f"{base}/{f.name}") for f in self.archives),
            files=tuple(replace(f, url=f"{base}/{f.name}") for f in (*self.files, *extra)),
            notes=(),
        )


NIH_CHESTXRAY14_NAME = "nih-chestxray14"
NIH_HOMEPAGE = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
NIH_DATA_ENTRY = "Data_Entry_2017.csv"
# Archive links published by the NIH Clinical Center in its batch_download_zips.py (images_01 .. images_12).
NIH_CHESTXRAY14_URLS = (
    "https://nihcc.box.com/shared/static/vfk49d74nhbxq3nqjg0900w5nvkorp5c.gz",
    "https://nihcc.box.com/shared/static/i28rlmbvmfjbl8p2n3ril0pptcmcu9d1.gz",
    "https://nihcc.box.com/shared/static/f1t00wrtdk94satdfb9olcolqx20z2jp.gz",
    "https://nihcc.box.com/shared/static/0aowwzs5lhjrceb3qp67ahp0rd1l1etg.gz",
    "https://nihcc.box.com/shared/static/v5e3goj22zr6h8tzualxfsqlqaygfbsn.gz",
    "https://nihcc.box.com/shared/static/asi7ikud9jwnkrnkj99jnpfkjdes7l6l.gz",
    "https://nihcc.box.com/shared/static/jn1b4mw4n6lnh74ovmcjb8y48h8xj07n.gz",
    "https://nihcc.box.com/shared/static/tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j.gz",
    "https://nihcc.box.com/shared/static/upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj.gz",
    "https://nihcc.box.com/shared/static/l6nilvfa9cg3s28tqv1qc1olm3gnz54p.gz",
    "https://nihcc.box.com/shared/static/hhq8fkdgvcari67vfhs7ppg2w6ni4jze.gz",
    "https://nihcc.box.com/shared/static/ioqwiy20ihqwyr8pf4c24eazhh281pbu.gz",
)
NIH_CHESTXRAY14 = DatasetSource(
    name=NIH_CHESTXRAY14_NAME,
    archives=tuple(
        RemoteFile(f"images_{i:02d}.tar.gz", url) for i, url in enumerate(NIH_CHESTXRAY14_URLS, start=1)
    ),
    homepage=NIH_HOMEPAGE,
    mirror_files=(NIH_DATA_ENTRY,),
    notes=(f"{NIH_DATA_ENTRY} (labels, patient ids) has no direct link: get it from {NIH_HOMEPAGE}",),
)
DATASETS = {NIH_CHESTXRAY14_NAME: NIH_CHESTXRAY14}


def get_source(
    name: str, *, base_url: str | None = None, urls_file: str | Path | None = None
) -> DatasetSource:
    """The configured source of a dataset, optionally redirected to a mirror or a list of links."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    source = DATASETS[name]
    if urls_file is not None:
        files = read_urls_file(urls_file)
        source = replace(
            source,
            archives=tuple(f for f in files if f.is_archive),
            files=tuple(f for f in files if not f.is_archive),
            notes=(),
        )
    elif base_url is not None:
        source = source.with_base_url(base_url)
    return source


def read_urls_file(path: str | Path) -> list[RemoteFile]:
    """Parse a links file: one file per line, ``[NAME] URL [size=N] [sha256=HEX] [md5=HEX]``; ``#`` comments.

    Without NAME the file is named after the last segment of the URL's path. Archives keep the file's order,
    which is what ``--parts`` counts.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read --urls-file {path}: {exc.strerror or exc}") from exc
    files: list[RemoteFile] = []
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        options = dict(w.split("=", 1) for w in words if "=" in w and "://" not in w)
        plain = [w for w in words if not ("=" in w and "://" not in w)]
        urls = [w for w in plain if "://" in w]
        if len(urls) != 1 or len(plain) > 2 or (len(plain) == 2 and plain[1] != urls[0]):
            raise ConfigError(f"{path} line {number}: expected '[NAME] URL [size=N] [sha256=HEX] [md5=HEX]'")
        url = urls[0]
        name = plain[0] if len(plain) == 2 else url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"{path} line {number}: cannot name the file for {url}")
        unknown = set(options) - {"size", "sha256", "md5"}
        if unknown:
            raise ConfigError(f"{path} line {number}: unknown option(s) {', '.join(sorted(unknown))}")
        try:
            size = int(options["size"]) if "size" in options else None
        except ValueError as exc:
            raise ConfigError(f"{path} line {number}: size must be an integer") from exc
        files.append(RemoteFile(name, url, size, options.get("sha256"), options.get("md5")))
    if not files:
        raise ConfigError(f"--urls-file {path} lists no files")
    return files


def parse_parts(text: str, count: int) -> list[int]:
    """1-based archive numbers from ``"1-12"``, ``"3"`` or ``"1,4-6"``; each must be in 1..count."""
    parts: set[int] = set()
    for item in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise ConfigError(f"--parts must look like 1-12, 3 or 1,4-6 (got {text!r})")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if not 1 <= first <= last <= count:
            raise ConfigError(f"--parts {item} is outside 1-{count}")
        parts.update(range(first, last + 1))
    return sorted(parts)


# --- transfer ----------------------------------------------------------------------------------------------

ProgressCallback = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Interrupted(Exception):
    """The connection ended before the announced length: resume with a Range request."""


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from ``bytes 100-199/1000`` or ``bytes */1000``; None where absent or ``*``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_once(
    remote: RemoteFile, part: Path, timeout: float, progress: ProgressCallback | None
) -> int | None:
    """One HTTP request appending to ``part``; returns the total size when the server said it."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"medsr/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(remote.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: complete if the total says so
            _, total = _content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total == have:
                return total
            part.unlink()  # the partial file does not belong to this resource
            raise _Interrupted(f"server refused to resume at byte {have}") from exc
        raise
    with response:
        length = response.headers.get("Content-Length")
        if have and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != have:
                raise _Interrupted(f"server resumed at byte {start}, not {have}")
            mode = "ab"
        else:  # 200: the server sent the whole file (it may ignore Range)
            have, mode = 0, "wb"
            total = int(length) if length and length.isdigit() else None
        if progress:
            progress(have, total)
        with part.open(mode) as handle:
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                have += len(chunk)
                if progress:
                    progress(have, total)
    if total is not None and have < total:
        raise _Interrupted(f"connection closed after {have} of {total} bytes")
    if total is not None and have > total:
        part.unlink()
        raise _Interrupted(f"received {have} bytes, more than the announced {total}")
    return total


def fetch(
    remote: RemoteFile,
    target: str | Path,
    *,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 1.0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download ``remote`` to ``target`` through ``target.part``, resuming after interruptions.

    Retries up to ``retries`` times (sleeping ``backoff * 2**attempt`` seconds) on network errors, cut
    connections and HTTP 408/429/5xx, each time asking only for the missing bytes. The size and checksums
    of :class:`RemoteFile` are checked before the rename; a mismatch deletes the partial file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    last_error = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(remote, part, timeout, progress)
            break
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in _RETRY_STATUS:
                raise DownloadError(remote.name, f"{last_error} from {remote.url}") from exc
        except (_Interrupted, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            last_error = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    else:
        raise DownloadError(remote.name, f"download failed after {retries + 1} attempts ({last_error})")
    size = part.stat().st_size
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"size {size} bytes, expected {remote.size}"
    for algorithm in ("sha256", "md5"):
        expected = getattr(remote, algorithm)
        if problem is None and expected and _file_digest(part, algorithm) != expected.lower():
            problem = f"{algorithm} checksum mismatch"
    if problem:
        part.unlink()
        raise DownloadError(remote.name, f"corrupt download ({problem}); deleted, a re-run fetches it again")
    os.replace(part, target)
    return target


# --- archives ----------------------------------------------------------------------------------------------


def _member_path(member: tarfile.TarInfo, strip_prefix: str) -> PurePosixPath | None:
    """Where a member goes below the images folder; None for folders; raises ValueError if unsafe."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or "\\" in member.name:
        raise ValueError(f"unsafe member path {member.name!r}")
    if member.issym() or member.islnk():
        raise ValueError(f"member {member.name!r} is a link")
    if member.isdir():
        return None
    if not member.isfile():
        raise ValueError(f"member {member.name!r} is not a regular file")
    parts = [p for p in name.parts if p not in ("", ".")]
    if len(parts) > 1 and parts[0] == strip_prefix:
        parts = parts[1:]
    if not parts:
        raise ValueError(f"empty member path {member.name!r}")
    return PurePosixPath(*parts)


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[tuple[tarfile.TarFile, IO[bytes]]]:
    """A streaming tar reader over the (possibly gzipped) file, and the stream beneath it."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if gzipped else raw  # type: ignore[assignment]
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar, stream


def _size(n: int) -> str:
    """Bytes for a message: ``2 GiB``, ``1.5 MiB``, ``100 bytes``."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} bytes"


class _TooLarge(ValueError):
    """An archive member, or the archive, unpacks to more than the configured limit."""


def _check_size(member: tarfile.TarInfo, total: int, max_member_bytes: int, max_total_bytes: int) -> None:
    """Refuse a member over the per-member limit, or one that takes the archive over the total limit.

    ``total`` is what the members before it hold. The size is the member header's, which is also exactly
    what :meth:`tarfile.TarFile.extractfile` returns, so the check comes before anything is read or written.
    """
    if member.size > max_member_bytes:
        raise _TooLarge(
            f"member {member.name!r} holds {_size(member.size)}, over the limit of {_size(max_member_bytes)} "
            "per member"
        )
    if total + member.size > max_total_bytes:
        raise _TooLarge(
            f"member {member.name!r} takes the archive over the limit of {_size(max_total_bytes)} in total"
        )


def verify_archive(
    path: str | Path,
    *,
    strip_prefix: str = "images",
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> tuple[int, int]:
    """Read a tar(.gz) completely (gzip CRC, every member) and check member paths and sizes; (files, bytes).

    Raises DownloadError for a damaged or unsafe archive, or one whose members exceed ``max_member_bytes``
    each or ``max_total_bytes`` together (checked from member headers, before the data is read); nothing is
    written.
    """
    path = Path(path)
    files = total = 0
    try:
        with _open_stream(path) as (tar, stream):
            for member in tar:
                if _member_path(member, strip_prefix) is None:
                    continue
                _check_size(member, total, max_member_bytes, max_total_bytes)
                handle = tar.extractfile(member)
                assert handle is not None  # regular file
                while chunk := handle.read(_CHUNK):
                    total += len(chunk)
                files += 1
            while stream.read(_CHUNK):  # to the end, so the gzip trailer (CRC, length) is checked
                pass
    except _TooLarge as exc:
        raise DownloadError(path.name, f"archive too large: {exc}; not extracted") from exc
    except ValueError as exc:
        raise DownloadError(path.name, f"unsafe archive ({exc}); not extracted") from exc
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise DownloadError(path.name, f"corrupt archive ({reason}); not extracted") from exc
    if files == 0:
        raise DownloadError(path.name, "archive holds no files; not extracted")
    return files, total


def extract_archive(
    path: str | Path,
    dest: str | Path,
    *,
    strip_prefix: str = "images",
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> int:
    """Extract the regular files of a verified archive into ``dest`` (created); returns the number of files.

    Each file is written to a temporary name and renamed, so an interrupted extraction leaves no
    half-written image under its real name. Extraction stops with a DownloadError naming the member and the
    limit before a member over ``max_member_bytes``, or one that takes the extracted total over
    ``max_total_bytes``, is written; the members before it stay.
    """
    path, dest = Path(path), Path(dest).absolute()
    count = total = 0
    try:
        with _open_stream(path) as (tar, _):
            for member in tar:
                relative = _member_path(member, strip_prefix)
                if relative is None:
                    continue
                target = dest.joinpath(*relative.parts)
                if not target.absolute().is_relative_to(dest):  # defence in depth; _member_path refuses ".."
                    raise ValueError(f"unsafe member path {member.name!r}")
                _check_size(member, total, max_member_bytes, max_total_bytes)
                source = tar.extractfile(member)
                assert source is not None
                with atomic_path(target) as tmp, tmp.open("wb") as out:
                    written = 0
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        if written > member.size:  # tarfile returns exactly member.size bytes; never trust it
                            raise _TooLarge(f"member {member.name!r} holds more than its header says")
                        out.write(chunk)
                total += written
                count += 1
    except _TooLarge as exc:
        raise DownloadError(path.name, f"archive too large: {exc}; extraction stopped") from exc
    except ValueError as exc:
        raise DownloadError(path.name, f"unsafe archive ({exc})") from exc
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DownloadError(path.name, f"extraction failed ({exc or type(exc).__name__})") from exc
    return count


# --- the whole job -----------------------------------------------------------------------------------------


@dataclass
class DownloadReport:
    """What a download run did: names completed now, names already complete, and (name, reason) failures."""

    completed: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def marker_path(dest: str | Path, name: str) -> Path:
    """The marker that says archive ``name`` was verified and extracted into ``dest``."""
    return Path(dest) / MARKER_DIR / f"{name}.done"


def download_dataset(
    source: DatasetSource,
    dest: str | Path,
    parts: Sequence[int] | None = None,
    *,
    keep_archives: bool = False,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 1.0,
    show_progress: bool = True,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> DownloadReport:
    """Fetch, verify and extract the chosen archives (1-based ``parts``; all by default) and the plain files.

    An archive with a member over ``max_member_bytes`` or members over ``max_total_bytes`` together is refused
    (a failure naming the member and the limit) before anything of it is extracted.

    Layout: ``dest/archives/`` (downloads; archives deleted after extraction unless ``keep_archives``),
    ``dest/images/`` (extracted files), ``dest/NAME`` (plain files), ``dest/.medsr-download/`` (markers).
    Failures are collected, not raised, so one bad archive does not stop the others.
    """
    dest = Path(dest)
    chosen = [source.archives[i - 1] for i in (parts or range(1, len(source.archives) + 1))]
    report = DownloadReport(notes=list(source.notes))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show_progress, transient=False) as bar:

        def get(remote: RemoteFile, target: Path) -> Path:
            task = bar.add_task(remote.name, total=remote.size)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total if total is not None else remote.size)

            try:
                return fetch(
                    remote, target, timeout=timeout, retries=retries, backoff=backoff, progress=update
                )
            except DownloadError:
                bar.remove_task(task)  # the failure is reported at the end
                raise

        for remote in source.files:
            target = dest / remote.name
            if target.exists():
                report.already_done.append(remote.name)
                continue
            if not remote.url:
                continue
            try:
                get(remote, target)
                report.completed.append(remote.name)
            except DownloadError as exc:
                if remote.required or "HTTP 404" not in exc.reason:
                    report.failures.append((remote.name, exc.reason))
                else:
                    report.notes.append(f"{remote.name}: not found at {remote.url}")

        for remote in chosen:
            marker = marker_path(dest, remote.name)
            if marker.exists():
                report.already_done.append(remote.name)
                continue
            archive = dest / "archives" / remote.name
            try:
                if not archive.exists():
                    get(remote, archive)
                limits = {"max_member_bytes": max_member_bytes, "max_total_bytes": max_total_bytes}
                try:
                    files, size = verify_archive(archive, strip_prefix=source.strip_prefix, **limits)
                except DownloadError as exc:
                    archive.unlink()
                    reason = f"{exc.reason}; deleted, a re-run fetches it again"
                    raise DownloadError(remote.name, reason) from exc
                extract_archive(archive, dest / "images", strip_prefix=source.strip_prefix, **limits)
            except DownloadError as exc:
                report.failures.append((remote.name, exc.reason))
                continue
            record = {"archive": remote.name, "url": remote.url, "files": files, "bytes": size}
            try:
                with atomic_path(marker) as tmp:
                    tmp.write_text(json.dumps(record))
            except OSError as exc:
                report.failures.append((remote.name, f"cannot write {marker}: {os_reason(exc)}"))
                continue
            if not keep_archives:
                archive.unlink()
            report.completed.append(remote.name)
    return report
