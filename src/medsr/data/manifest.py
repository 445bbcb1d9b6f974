"""Patient-aware manifests: scan folders of images, find each image's patient, split by patient.

A manifest is a CSV with one row per image (``path`` relative to the manifest's folder, ``patient_id``,
``split``, ``modality``, ``width``, ``height``, ``channels``, ``bit_depth``). Every image of a patient lands
in the same split, so no patient is seen in training and then scored in validation or test.

Patient id, first rule that applies:

1. the DICOM ``PatientID``;
2. metadata tables (``--patients``): each names an image id and a patient id per row. Tables may use
   different patient id schemes for the same people, so ids are joined with a union-find: raw patient ids
   that share an image id, or are the same string, are one patient, named by the smallest raw id (as text);
3. NIH ChestX-ray14 file names (``00001088_023.png`` -> ``00001088``);
4. otherwise the file itself (its manifest path).

The split is a hash of ``seed:patient_id``, not a shuffle: it is deterministic for a seed and a patient keeps
its split when other files are added.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pydicom
from PIL import Image

from medsr.atomic import atomic_path
from medsr.errors import ConfigError, ImageReadError, ManifestError, ManifestWriteError, os_reason
from medsr.io import read_image, sniff_format
from medsr.io.dicom import InvalidRescaleError, rescale
from medsr.io.find import IMAGE_SUFFIXES, Item, image_key, is_regular_file
from medsr.io.find import find_images as find_in_folder
from medsr.io.image import DEFAULT_MAX_PIXELS, empty_reason
from medsr.io.quiet import collect_warnings
from medsr.io.raster import exif_orientation

SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("path", "patient_id", "split", "modality", "width", "height", "channels", "bit_depth")
COLUMNS = (*REQUIRED_COLUMNS, "source")  # "source" (hospital or data set) is optional when reading
UNKNOWN_MODALITY = "OT"  # DICOM's "other"

# Metadata column names, compared after lower-casing and dropping everything but letters and digits.
ID_COLUMNS = ("filename", "imageid", "imageindex", "imagename", "image", "file", "filepath", "path", "id")
PATIENT_COLUMNS = ("patientid", "patient", "subjectid", "subject", "participantid", "participant")
MODALITY_COLUMNS = ("modality",)

DICOM_MODALITIES = frozenset("CR DX CT MR US MG XA RF NM PT ES RG IO PX OP XC GM SM OT".split())
# Free-text modality names seen in public metadata tables, mapped to the DICOM code a reader expects.
MODALITY_WORDS = {
    "xray": "DX",  # projection radiograph; the tables do not say whether CR or DX
    "radiograph": "DX",
    "radiography": "DX",
    "ct": "CT",
    "mri": "MR",
    "mr": "MR",
    "ultrasound": "US",
    "us": "US",
    "endoscopy": "ES",
    "mammography": "MG",
}

_NIH_NAME = re.compile(r"^(\d{8})_\d{3}$")


@dataclass(frozen=True)
class ImageInfo:
    """What a scan learns about one image file (sizes are per frame; channels after colour conversion)."""

    path: Path
    width: int
    height: int
    channels: int
    bit_depth: int
    modality: str | None = None  # DICOM Modality
    dicom_patient_id: str | None = None  # DICOM PatientID, when present and not empty


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row; ``path`` is absolute once read or built (relative only inside the CSV)."""

    path: Path
    patient_id: str
    split: str
    modality: str
    width: int
    height: int
    channels: int
    bit_depth: int
    source: str = ""


class Skipped(NamedTuple):
    """A file left out of the manifest and why; ``unreadable`` is False for files dropped by ``min_size``."""

    path: Path
    reason: str
    unreadable: bool = True


# --- splitting ---------------------------------------------------------------------------------------------


def assign_split(patient_id: str, seed: int = 0, val: float = 0.1, test: float = 0.1) -> str:
    """The split of a patient: a uniform number from ``sha256(f"{seed}:{patient_id}")`` cut at test, test+val.

    Depends only on the patient id and the seed, so adding files never moves an existing patient.
    """
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).hexdigest()
    u = int(digest[:16], 16) / 2**64
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"


def _check_fractions(val: float, test: float) -> None:
    if not (0.0 <= val <= 1.0 and 0.0 <= test <= 1.0 and val + test <= 1.0):
        raise ConfigError(
            f"--val and --test must be fractions in [0, 1] with val + test <= 1 (got {val}, {test})"
        )


# --- patient ids -------------------------------------------------------------------------------------------


def metadata_id(name: str) -> str:
    """The id linking a file to a metadata row: its base name without an image suffix (``a/b.png`` -> ``b``).

    Only known image suffixes are removed, so ids such as DICOM UIDs (``1.2.840.1``) are kept whole.
    """
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = base.rpartition(".")
    if dot and stem and f".{suffix.lower()}" in IMAGE_SUFFIXES:
        return stem
    return base


def nih_patient_id(path: str | Path) -> str | None:
    """Patient of an NIH ChestX-ray14 file name (``00001088_023.png`` -> ``00001088``), else None."""
    match = _NIH_NAME.match(metadata_id(Path(path).name))
    return match.group(1) if match else None


def _normalise_column(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def detect_columns(
    fieldnames: Sequence[str], id_column: str | None = None, patient_column: str | None = None
) -> tuple[str | None, str | None]:
    """The (image id, patient) columns of a metadata table; an override is used when the table has it."""

    def pick(override: str | None, candidates: Sequence[str]) -> str | None:
        by_norm = {_normalise_column(f): f for f in reversed(fieldnames)}  # first spelling wins
        if override is not None and _normalise_column(override) in by_norm:
            return by_norm[_normalise_column(override)]
        for candidate in candidates:
            if candidate in by_norm:
                return by_norm[candidate]
        return None

    return pick(id_column, ID_COLUMNS), pick(patient_column, PATIENT_COLUMNS)


def _same_column(found: str, wanted: str | None) -> bool:
    return wanted is not None and _normalise_column(found) == _normalise_column(wanted)


def _modality_code(value: str) -> str | None:
    text = value.strip()
    if text.upper() in DICOM_MODALITIES:
        return text.upper()
    return MODALITY_WORDS.get(_normalise_column(text))


class PatientResolver:
    """Patient ids (and modalities) of image files from metadata tables, joined across tables by image id.

    Raw patient ids are nodes of a union-find, linked whenever a table row names an image: two ids meet if
    they name a common image (``hannover-640`` says ``042f06a9`` and ``hannover-2000`` says ``219`` for image
    ``b343e657``). A group is named by its smallest raw id as a string, so the name does not depend on the
    order of the tables.
    """

    def __init__(self) -> None:
        self._parent: dict[tuple[str, str], tuple[str, str]] = {}
        self._modality: dict[str, str] = {}
        self._canonical: dict[tuple[str, str], str] | None = None

    def _find(self, node: tuple[str, str]) -> tuple[str, str]:
        parent = self._parent.setdefault(node, node)
        while parent != node:
            grand = self._parent[parent]
            self._parent[node] = grand  # path halving
            node, parent = parent, grand
        return node

    def add(self, image_id: str, patient_id: str, modality: str | None = None) -> None:
        """Record that ``image_id`` (a file name or its stem) shows patient ``patient_id``."""
        key, patient = metadata_id(image_id), patient_id.strip()
        if not key or not patient:
            return
        a, b = self._find(("image", key)), self._find(("patient", patient))
        if a != b:
            self._parent[a] = b
        self._canonical = None
        code = _modality_code(modality) if modality else None
        # A DICOM code from any table beats a mapped free-text word ("CR" over "X-ray").
        if code and (key not in self._modality or modality.strip().upper() in DICOM_MODALITIES):
            self._modality[key] = code

    def _names(self) -> dict[tuple[str, str], str]:
        if self._canonical is None:
            best: dict[tuple[str, str], str] = {}
            for kind, value in self._parent:
                if kind == "patient":
                    root = self._find((kind, value))
                    if root not in best or value < best[root]:
                        best[root] = value
            self._canonical = best
        return self._canonical

    def patient_for(self, path: str | Path) -> str | None:
        """The canonical patient id of a file, or None when no table names it."""
        node = ("image", metadata_id(Path(path).name))
        if node not in self._parent:
            return None
        return self._names().get(self._find(node))

    def modality_for(self, path: str | Path) -> str | None:
        """The DICOM modality code that a table gives for a file, or None."""
        return self._modality.get(metadata_id(Path(path).name))

    def __len__(self) -> int:
        """Number of distinct patients (groups) known from the tables."""
        return len(set(self._names().values()))

    @classmethod
    def from_csv(
        cls,
        paths: Iterable[str | Path],
        *,
        id_column: str | None = None,
        patient_column: str | None = None,
    ) -> PatientResolver:
        """Read metadata CSVs, auto-detecting (or using the given) image id and patient columns in each."""
        resolver = cls()
        used_id, used_patient = False, False
        paths = [Path(p) for p in paths]
        for path in paths:
            try:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    reader = csv.DictReader(handle)
                    fields = list(reader.fieldnames or [])
                    id_col, patient_col = detect_columns(fields, id_column, patient_column)
                    if id_col is None or patient_col is None:
                        missing = "an image id" if id_col is None else "a patient"
                        raise ManifestError(
                            path,
                            f"no column naming {missing} (columns: {', '.join(fields) or 'none'}); "
                            "use --id-column/--patient-column",
                        )
                    used_id |= _same_column(id_col, id_column)
                    used_patient |= _same_column(patient_col, patient_column)
                    modality_col = next((f for f in fields if _normalise_column(f) in MODALITY_COLUMNS), None)
                    for row in reader:
                        resolver.add(
                            row.get(id_col) or "",
                            row.get(patient_col) or "",
                            row.get(modality_col) if modality_col else None,
                        )
            except OSError as exc:
                raise ManifestError(path, exc.strerror or str(exc)) from exc
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ManifestError(path, f"not a readable CSV ({exc})") from exc
        if paths and id_column is not None and not used_id:
            raise ConfigError(f"--id-column {id_column!r} is not a column of any --patients table")
        if paths and patient_column is not None and not used_patient:
            raise ConfigError(f"--patient-column {patient_column!r} is not a column of any --patients table")
        return resolver


# --- scanning ----------------------------------------------------------------------------------------------


def find_images(roots: Iterable[str | Path]) -> list[Path]:
    """Image files under the roots (:func:`medsr.io.find.find_images`), absolute, sorted, unique.

    A root may also be a single file (kept whatever it is, so that reading it reports what is wrong); a root
    that does not exist raises.
    """
    found: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        if root.is_dir():
            images = find_in_folder(root)
        elif root.exists():
            images = [root]
        else:
            raise ManifestError(root, "no such file or folder")
        for path in images:
            found[Path(os.path.normpath(path.absolute()))] = None
    return sorted(found)


# Pillow modes whose (channels, bit depth) are unambiguous; other modes are checked with a full read.
_HEADER_MODES = {"L": (1, 8), "RGB": (3, 8), "I;16": (1, 16), "I;16B": (1, 16), "I;16L": (1, 16)}
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _dicom_text(ds: object, keyword: str) -> str | None:
    value = getattr(ds, "get", lambda *_: None)(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _probe_header(path: Path, max_pixels: int) -> ImageInfo | None:
    """Sizes from the file header alone, or None when only a full read can tell.

    The reader follows the content, as in :func:`medsr.io.read_image`; anything but a regular file that starts
    like an image (a FIFO, which would block a reader; an empty or unknown file) is left to that full read.
    """
    fmt = None
    if is_regular_file(path):  # a FIFO would block the header readers
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            fmt = sniff_format(handle.read(132))
    if fmt is None:
        return None
    if fmt != "dicom":
        try:
            with Image.open(path) as im:
                mode, (width, height) = im.mode, im.size
                if exif_orientation(im) in (5, 6, 7, 8):  # read upright: shown (and read) a quarter turned
                    width, height = height, width
        except Exception as exc:  # Pillow raises many types for bad files
            raise ImageReadError(path, f"not a readable image ({exc})") from exc
        if mode not in _HEADER_MODES:
            return None
        channels, bits = _HEADER_MODES[mode]
        modality = patient = None
    else:
        try:
            ds = pydicom.dcmread(path, defer_size="1 KB")  # large values (pixels) are skipped, not read
        except Exception as exc:
            raise ImageReadError(path, f"not a DICOM file ({exc})") from exc
        if not any(tag in ds for tag in _PIXEL_TAGS):
            raise ImageReadError(path, "DICOM file has no pixel data")
        photometric = _dicom_text(ds, "PhotometricInterpretation") or ""
        if photometric == "PALETTE COLOR" or "Rows" not in ds or "Columns" not in ds:
            return None
        try:
            rescale(ds)
        except InvalidRescaleError as exc:
            raise ImageReadError(path, str(exc)) from None
        width, height = int(ds.Columns), int(ds.Rows)
        channels = 3 if int(ds.get("SamplesPerPixel", 1) or 1) == 3 else 1
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
        modality, patient = _dicom_text(ds, "Modality"), _dicom_text(ds, "PatientID")
    if width * height > max_pixels:
        raise ImageReadError(path, f"image of {width}x{height} pixels exceeds the limit of {max_pixels}")
    reason = empty_reason((height, width, channels))
    if reason:
        raise ImageReadError(path, reason)
    return ImageInfo(path, width, height, channels, bits, modality, patient)


def probe_image(path: str | Path, *, headers_only: bool = False, max_pixels: int | None = None) -> ImageInfo:
    """Size, channels, bit depth, DICOM modality and PatientID of one image; raises ImageReadError.

    By default the whole image is decoded with :func:`medsr.io.read_image`, so a file in a manifest is
    known to load in training. ``headers_only`` reads just the header (much faster on large sets; a file
    truncated after its header is then not detected); unusual modes still fall back to a full read.
    """
    path = Path(path)
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if headers_only:
        with collect_warnings():  # library warnings are not printed (as while reading a whole image)
            info = _probe_header(path, limit)
        if info is not None:
            return info
    image = read_image(path, max_pixels=limit)
    ds = image.dataset
    return ImageInfo(
        path,
        image.width,
        image.height,
        image.channels,
        int(image.bit_depth),
        image.modality or (_dicom_text(ds, "Modality") if ds is not None else None),
        _dicom_text(ds, "PatientID") if ds is not None else None,
    )


def scan_images(
    roots: Iterable[str | Path],
    *,
    headers_only: bool = False,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ImageInfo], list[Skipped]]:
    """Probe every image under the roots; unreadable files are returned as skipped, never raised."""
    paths = find_images(roots)
    workers = workers or min(4, os.cpu_count() or 1)

    def probe(path: Path) -> ImageInfo | Skipped:
        try:
            return probe_image(path, headers_only=headers_only)
        except ImageReadError as exc:
            return Skipped(path, exc.reason)
        except Exception as exc:  # a reader bug must not abort a scan of thousands of files
            return Skipped(path, f"{type(exc).__name__}: {exc}")

    infos: list[ImageInfo] = []
    skipped: list[Skipped] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, result in enumerate(pool.map(probe, paths), start=1):
            (skipped if isinstance(result, Skipped) else infos).append(result)
            if on_progress is not None:
                on_progress(done, len(paths))
    return infos, skipped


# --- building, writing, reading ----------------------------------------------------------------------------


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def image_source(path: Path, roots: Sequence[Path], rules: Sequence[tuple[str, str]] = ()) -> str:
    """The source (hospital, data set) of an image: the first folder below the scan root that holds it.

    A file given directly as a root, or lying directly in a root, takes the root's own folder name. ``rules``
    are ``(pattern, name)`` pairs (``--source 'hannover-*=hannover'``): the first pattern that matches the
    folder name (shell-style) renames it, so several folders can form one source.
    """
    folder = path.parent.name
    for root in sorted((Path(os.path.normpath(r.absolute())) for r in roots), key=lambda r: -len(r.parts)):
        if root == path:
            break
        if root in path.parents:
            parts = path.relative_to(root).parts
            folder = parts[0] if len(parts) > 1 else root.name
            break
    for pattern, name in rules:
        if fnmatch.fnmatchcase(folder, pattern):
            return name
    return folder


def parse_source_rules(items: Iterable[str]) -> list[tuple[str, str]]:
    """``["PATTERN=NAME", ...]`` (the CLI's ``--source``) as ``(pattern, name)`` pairs."""
    rules = []
    for item in items:
        pattern, sep, name = item.partition("=")
        if not sep or not pattern.strip() or not name.strip():
            raise ConfigError(f"--source takes FOLDER_PATTERN=NAME (e.g. 'hannover-*=hannover'), not {item!r}")
        rules.append((pattern.strip(), name.strip()))
    return rules


def build_manifest(
    roots: Iterable[str | Path],
    out: str | Path,
    *,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    patients: Iterable[str | Path] = (),
    id_column: str | None = None,
    patient_column: str | None = None,
    min_size: int = 0,
    headers_only: bool = False,
    sources: Sequence[tuple[str, str]] = (),
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ManifestRow], list[Skipped]]:
    """Scan the roots and give each readable image its patient, split and source (rows sorted by path).

    ``out`` is where the manifest will be written: files without any patient information are their own
    patient, named by their path relative to that folder. Images with ``min(width, height) < min_size``
    are skipped with ``unreadable=False``. ``sources`` are :func:`image_source` rules. The split depends on
    the patient alone, so with enough patients every source is represented in every split (the CLI prints
    the per-source counts).
    """
    roots = [Path(r) for r in roots]
    _check_fractions(val, test)
    if min_size < 0:
        raise ConfigError(f"--min-size must be >= 0 (got {min_size})")
    resolver = PatientResolver.from_csv(patients, id_column=id_column, patient_column=patient_column)
    folder = Path(out).absolute().parent
    infos, skipped = scan_images(roots, headers_only=headers_only, workers=workers, on_progress=on_progress)
    rows: list[ManifestRow] = []
    for info in infos:
        if min(info.width, info.height) < min_size:
            reason = f"{info.width}x{info.height} is smaller than --min-size {min_size}"
            skipped.append(Skipped(info.path, reason, unreadable=False))
            continue
        patient = (
            info.dicom_patient_id
            or resolver.patient_for(info.path)
            or nih_patient_id(info.path)
            or _relative(info.path, folder)
        )
        modality = info.modality or resolver.modality_for(info.path) or UNKNOWN_MODALITY
        rows.append(
            ManifestRow(
                path=info.path,
                patient_id=patient,
                split=assign_split(patient, seed, val, test),
                modality=modality,
                width=info.width,
                height=info.height,
                channels=info.channels,
                bit_depth=info.bit_depth,
                source=image_source(info.path, roots, sources),
            )
        )
    rows.sort(key=lambda r: r.path)
    skipped.sort(key=lambda s: s.path)
    return rows, skipped


def _write_csv(path: Path, header: Sequence[str], records: Iterable[Sequence[object]]) -> None:
    """Write a CSV through a temporary file and a rename, so a reader never sees half a file.

    Raises :class:`ManifestWriteError` (one line: the path and the operating system's reason) when the file
    cannot be written; the temporary file is removed.
    """
    try:
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(records)
    except OSError as exc:
        raise ManifestWriteError(path, os_reason(exc)) from exc


def write_manifest(rows: Iterable[ManifestRow], path: str | Path) -> Path:
    """Write rows as a manifest CSV, paths relative to its folder (POSIX separators)."""
    path = Path(path).absolute()
    _write_csv(
        path,
        COLUMNS,
        (
            (
                _relative(r.path, path.parent),
                r.patient_id,
                r.split,
                r.modality,
                r.width,
                r.height,
                r.channels,
                r.bit_depth,
                r.source,
            )
            for r in rows
        ),
    )
    return path


def skipped_path(manifest: str | Path) -> Path:
    """Where the skipped-files list of a manifest goes: ``<stem>.skipped.csv`` beside it."""
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.stem}.skipped.csv")


def write_skipped(skipped: Iterable[Skipped], manifest: str | Path) -> Path:
    """Write ``<manifest stem>.skipped.csv`` (path, reason), paths relative to the manifest's folder."""
    out = skipped_path(Path(manifest).absolute())
    _write_csv(out, ("path", "reason"), ((_relative(s.path, out.parent), s.reason) for s in skipped))
    return out


def read_manifest(path: str | Path, split: str | None = None) -> list[ManifestRow]:
    """Rows of a manifest (optionally one split), with paths resolved against the manifest's folder.

    Raises ManifestError naming the file and line for a missing file, missing columns or a bad value.
    """
    path = Path(path)
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    folder = path.absolute().parent
    rows: list[ManifestRow] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ManifestError(path, f"not a medsr manifest (missing columns: {', '.join(missing)})")
            for record in reader:
                line = reader.line_num
                if record["split"] not in SPLITS:
                    reason = f"line {line}: split {record['split']!r} is not train, val or test"
                    raise ManifestError(path, reason)
                if not record["path"] or not record["patient_id"]:
                    raise ManifestError(path, f"line {line}: empty path or patient_id")
                try:
                    sizes = [int(record[c]) for c in ("width", "height", "channels", "bit_depth")]
                except (TypeError, ValueError) as exc:
                    reason = f"line {line}: width, height, channels and bit_depth must be integers"
                    raise ManifestError(path, reason) from exc
                if split is not None and record["split"] != split:
                    continue
                rows.append(
                    ManifestRow(
                        Path(os.path.normpath(folder / record["path"])),
                        record["patient_id"],
                        record["split"],
                        record["modality"] or UNKNOWN_MODALITY,
                        *sizes,
                        (record.get("source") or "").strip(),
                    )
                )
    except OSError as exc:
        raise ManifestError(path, exc.strerror or str(exc)) from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ManifestError(path, f"not a readable CSV ({exc})") from exc
    return rows


def source_summary(rows: Iterable[ManifestRow]) -> dict[str, dict[str, tuple[int, int]]]:
    """``{source: {split: (patients, images)}}``: does every split hold patients of every source?"""
    by_source: dict[str, list[ManifestRow]] = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row)
    return {source: split_summary(group) for source, group in sorted(by_source.items())}


def split_summary(rows: Iterable[ManifestRow]) -> dict[str, tuple[int, int]]:
    """``{split: (patients, images)}`` for train, val and test (zeros included)."""
    patients: dict[str, set[str]] = {s: set() for s in SPLITS}
    images = dict.fromkeys(SPLITS, 0)
    for row in rows:
        patients[row.split].add(row.patient_id)
        images[row.split] += 1
    return {s: (len(patients[s]), images[s]) for s in SPLITS}


def items_from_manifest(manifest: str | Path, split: str) -> list[Item]:
    """Items of one split of a manifest, named by their path below the manifest's folder, with their source.

    Training validation builds the same items, so ``medsr evaluate --split val`` reproduces what a run logged.
    """
    folder = Path(manifest).absolute().parent
    return [Item(row.path, image_key(row.path, folder), row.source) for row in read_manifest(manifest, split)]
