"""Patient-aware manifests: patient rules in order, splits by patient, determinism, skipped files."""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medsr.cli import app
from medsr.data.manifest import (
    ManifestRow,
    PatientResolver,
    assign_split,
    build_manifest,
    find_images,
    image_source,
    metadata_id,
    nih_patient_id,
    parse_source_rules,
    probe_image,
    read_manifest,
    skipped_path,
    source_summary,
    split_summary,
    write_manifest,
    write_skipped,
)
from medsr.errors import ConfigError, ManifestError, MedsrError

CHEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "chest-xray"


def _png(
    path: Path, size: tuple[int, int] = (40, 32), *, dtype=np.uint8, rgb: bool = False, value: int = 0
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    rng = np.random.default_rng(value)
    top = 65535 if dtype == np.uint16 else 255
    shape = (h, w, 3) if rgb else (h, w)
    Image.fromarray(rng.integers(0, top, shape).astype(dtype)).save(path)
    return path


def _dicom(path: Path, patient_id: str, size: tuple[int, int] = (48, 36)) -> Path:
    """A small 12-bit CT slice written with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = patient_id, "Test^Patient", "CT"
    ds.Rows, ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = np.random.default_rng(1).integers(0, 4096, size, dtype=np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """Images in two folders, two metadata tables with different patient id schemes, a DICOM, junk."""
    data = tmp_path / "data"
    files = {
        "nih_a0": _png(data / "site_a" / "00001088_000.png", value=1),
        "nih_a1": _png(data / "site_a" / "00001088_001.png", value=2),
        "nih_b2": _png(data / "site_b" / "00001088_002.png", value=3),  # same NIH patient, other folder
        "nih_other": _png(data / "site_a" / "00002000_000.png", value=4),
        "nih_in_meta": _png(data / "site_a" / "00003000_000.png", value=5),  # metadata beats the name
        "meta_a": _png(data / "site_a" / "img_a1.png", value=6),
        "meta_b": _png(data / "site_b" / "img_b1.png", value=7),  # same patient as img_a1 via table 2
        "meta_c": _png(data / "site_b" / "img_c1.png", value=8),  # only in table 2
        "deep": _png(data / "site_b" / "deep.png", dtype=np.uint16, value=9),
        "rgb": _png(data / "site_b" / "colour.png", rgb=True, value=10),
        "lonely": _png(data / "site_a" / "lonely.png", value=11),
        "small": _png(data / "site_a" / "tiny.png", size=(8, 12), value=12),
        "dicom": _dicom(data / "site_b" / "ct_slice.dcm", "DCM-7"),  # also named in a table: DICOM wins
        "dicom_no_suffix": _dicom(data / "site_b" / "1.2.840.99.1", "DCM-8"),
    }
    files["broken"] = data / "site_a" / "broken.png"
    files["broken"].write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (data / "site_a" / "notes.txt").write_text("not an image, ignored")
    files["meta1"] = _write_csv(
        tmp_path / "table1.csv",
        ["patient_id", "image_id", "modality"],
        [["P1", "img_a1", "CR"], ["M3", "00003000_000", "CR"], ["META-X", "ct_slice", "CT"]],
    )
    files["meta2"] = _write_csv(
        tmp_path / "table2.csv",
        ["patientid", "filename", "modality"],
        [["Q9", "img_a1.png", "X-ray"], ["Q9", "img_b1.png", "X-ray"], ["Q5", "img_c1.png", "X-ray"]],
    )
    files["root"] = data
    files["out"] = tmp_path / "manifest.csv"
    return files


def _build(tree: dict[str, Path], **kw):
    kw.setdefault("patients", [tree["meta1"], tree["meta2"]])
    return build_manifest([tree["root"]], tree["out"], **kw)


def _by_name(rows) -> dict[str, object]:
    return {Path(r.path).name: r for r in rows}


def test_assign_split_is_the_documented_hash():
    for seed in (0, 7):
        for pid in ("00001088", "042f06a9", "a/b.png"):
            u = int(hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()[:16], 16) / 2**64
            expected = "test" if u < 0.2 else "val" if u < 0.5 else "train"
            assert assign_split(pid, seed, val=0.3, test=0.2) == expected


def test_assign_split_fractions_hold_over_many_patients():
    splits = [assign_split(f"patient-{i}", 3, val=0.1, test=0.2) for i in range(4000)]
    assert abs(splits.count("test") / 4000 - 0.2) < 0.03
    assert abs(splits.count("val") / 4000 - 0.1) < 0.03
    assert {assign_split(f"p{i}", 0, val=0.0, test=0.0) for i in range(50)} == {"train"}
    assert {assign_split(f"p{i}", 0, val=0.0, test=1.0) for i in range(50)} == {"test"}


def test_image_key_and_nih_names():
    assert metadata_id("b343e657.jpg") == "b343e657"
    assert metadata_id("images/b343e657.PNG") == "b343e657"
    assert metadata_id("b343e657") == "b343e657"
    assert metadata_id("1.2.840.10008.1") == "1.2.840.10008.1"  # a UID keeps its dots
    assert nih_patient_id("x/00001088_023.png") == "00001088"
    assert nih_patient_id("00001088_23.png") is None
    assert nih_patient_id("lonely.png") is None


def test_find_images_by_suffix_and_dicom_preamble(tree):
    names = {p.name for p in find_images([tree["root"]])}
    assert "1.2.840.99.1" in names  # DICOM without a suffix, found by its preamble
    assert "broken.png" in names  # a candidate: reading it decides
    assert "notes.txt" not in names
    with pytest.raises(MedsrError, match="no such file"):
        find_images([tree["root"] / "missing"])


def test_patient_rules_apply_in_order(tree):
    rows, _ = _build(tree)
    by = _by_name(rows)
    assert by["ct_slice.dcm"].patient_id == "DCM-7"  # 1. DICOM PatientID, although table 1 names it
    assert by["1.2.840.99.1"].patient_id == "DCM-8"
    assert by["00003000_000.png"].patient_id == "M3"  # 2. metadata before the NIH name
    assert by["img_a1.png"].patient_id == "P1"  # P1 and Q9 share img_a1: smallest raw id names the group
    assert by["img_b1.png"].patient_id == "P1"
    assert by["img_c1.png"].patient_id == "Q5"
    assert by["00001088_000.png"].patient_id == "00001088"  # 3. NIH name
    assert by["00002000_000.png"].patient_id == "00002000"
    assert by["lonely.png"].patient_id == "data/site_a/lonely.png"  # 4. the file itself, manifest-relative
    # Without the tables the metadata-only images fall back to their own files.
    rows, _ = _build(tree, patients=[])
    by = _by_name(rows)
    assert by["img_b1.png"].patient_id == "data/site_b/img_b1.png"
    assert by["00003000_000.png"].patient_id == "00003000"


def test_sizes_channels_bit_depth_and_modality(tree):
    rows, _ = _build(tree)
    by = _by_name(rows)
    assert (by["00001088_000.png"].width, by["00001088_000.png"].height) == (32, 40)  # size is (h, w)
    assert (by["deep.png"].channels, by["deep.png"].bit_depth) == (1, 16)
    assert (by["colour.png"].channels, by["colour.png"].bit_depth) == (3, 8)
    assert (by["ct_slice.dcm"].width, by["ct_slice.dcm"].height, by["ct_slice.dcm"].bit_depth) == (36, 48, 12)
    assert by["ct_slice.dcm"].modality == "CT"
    assert by["img_a1.png"].modality == "CR"  # a DICOM code in one table beats "X-ray" in the other
    assert by["img_c1.png"].modality == "DX"  # "X-ray" mapped to the projection radiograph code
    assert by["lonely.png"].modality == "OT"


def test_header_only_scan_agrees_with_full_read(tree):
    for path in find_images([tree["root"]]):
        if path.name == "broken.png":
            continue
        assert probe_image(path, headers_only=True) == probe_image(path), path.name


def test_same_patient_in_two_folders_shares_a_split(tree):
    for seed in range(12):
        rows, _ = _build(tree, seed=seed, val=0.3, test=0.3)
        splits = defaultdict(set)
        for row in rows:
            splits[row.patient_id].add(row.split)
        assert all(len(s) == 1 for s in splits.values())
        by = _by_name(rows)
        assert by["00001088_000.png"].split == by["00001088_002.png"].split  # site_a and site_b
        assert by["img_a1.png"].split == by["img_b1.png"].split


def test_split_is_deterministic_per_seed(tree):
    first, _ = _build(tree, seed=5, val=0.3, test=0.3)
    again, _ = _build(tree, seed=5, val=0.3, test=0.3)
    assert first == again
    seeds = {tuple(r.split for r in _build(tree, seed=s, val=0.3, test=0.3)[0]) for s in range(6)}
    assert len(seeds) > 1  # the seed matters


def test_split_is_stable_when_files_are_added(tree):
    before, _ = _build(tree, seed=1, val=0.3, test=0.3)
    for i in range(30):
        _png(tree["root"] / "site_c" / f"{40000000 + i:08d}_000.png", value=100 + i)
    _png(tree["root"] / "site_c" / "00001088_009.png", value=200)  # a known patient gets a new image
    after, _ = _build(tree, seed=1, val=0.3, test=0.3)
    assert len(after) == len(before) + 31
    new = {r.path: r for r in after}
    for row in before:
        assert new[row.path].split == row.split and new[row.path].patient_id == row.patient_id
    by = _by_name(after)
    assert by["00001088_009.png"].split == by["00001088_000.png"].split
    assert {r.split for r in after} == {"train", "val", "test"}


def test_unreadable_and_small_files_are_skipped_and_listed(tree):
    rows, skipped = _build(tree, min_size=16)
    names = {Path(r.path).name for r in rows}
    assert "broken.png" not in names and "tiny.png" not in names
    reasons = {s.path.name: s for s in skipped}
    assert set(reasons) == {"broken.png", "tiny.png"}
    assert reasons["broken.png"].unreadable and not reasons["tiny.png"].unreadable
    assert "min-size 16" in reasons["tiny.png"].reason and "12x8" in reasons["tiny.png"].reason
    # min-size is a bound on the shorter side: an 8x12 image stays at 8
    rows8, skipped8 = _build(tree, min_size=8)
    assert "tiny.png" in {Path(r.path).name for r in rows8}
    out = write_skipped(skipped, tree["out"])
    assert out == tree["out"].with_name("manifest.skipped.csv") == skipped_path(tree["out"])
    with out.open() as handle:
        listed = list(csv.DictReader(handle))
    assert {r["path"] for r in listed} == {"data/site_a/broken.png", "data/site_a/tiny.png"}
    assert all(r["reason"] for r in listed)


def test_manifest_round_trip_resolves_paths_against_its_folder(tree, tmp_path, monkeypatch):
    rows, _ = _build(tree)
    write_manifest(rows, tree["out"])
    with tree["out"].open() as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == [
        "path",
        "patient_id",
        "split",
        "modality",
        "width",
        "height",
        "channels",
        "bit_depth",
        "source",
    ]
    assert all(not Path(r["path"]).is_absolute() and "\\" not in r["path"] for r in records)
    monkeypatch.chdir(tmp_path / "data")  # reading must not depend on the working directory
    back = read_manifest(tree["out"])
    assert back == rows
    assert all(r.path.is_file() for r in back)
    test_rows = read_manifest(tree["out"], split="test")
    assert test_rows == [r for r in rows if r.split == "test"]
    counts = split_summary(back)
    assert sum(n for _, n in counts.values()) == len(rows)


def test_manifest_with_a_250_byte_name_is_written(tree, tmp_path):
    rows, _ = _build(tree)
    out = tmp_path / ("m" * 246 + ".csv")
    assert write_manifest(rows, out) == out
    assert read_manifest(out) == rows
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("m")] == [out.name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


@pytest.mark.parametrize("where", ["file_parent", "proc"])
def test_unwritable_manifest_is_one_line_and_leaves_nothing(tree, tmp_path, where):
    rows, skipped = _build(tree)
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, not a folder")
    # tests run as root, where a read-only folder does not stop writes: use places no one can write to
    out = blocker / "m.csv" if where == "file_parent" else Path("/proc/medsr-test-m.csv")
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ManifestError) as info:
        write_manifest(rows, out)
    message = str(info.value)
    assert message.startswith(f"cannot write {out}: ") and "\n" not in message and "Errno" not in message
    assert message.endswith("Not a directory" if where == "file_parent" else "No such file or directory")
    with pytest.raises(ManifestError, match="cannot write"):
        write_skipped(skipped, out)
    assert sorted(tmp_path.iterdir()) == before and blocker.read_text().startswith("a regular file")
    assert not [p for p in Path("/proc").iterdir() if p.name.startswith(".medsr-")]


def test_prepare_to_an_unwritable_place_is_one_line(tree, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["prepare", str(tree["root"]), "--out", str(blocker / "m.csv")])
    assert result.exit_code != 0
    assert isinstance(result.exception, ManifestError)
    assert str(result.exception) == f"cannot write {blocker / 'm.csv'}: Not a directory"
    assert not [p for p in tmp_path.rglob(".medsr-*")], "temporary file left behind"


def test_read_manifest_reports_bad_files(tmp_path):
    with pytest.raises(MedsrError, match="missing.csv"):
        read_manifest(tmp_path / "missing.csv")
    bad = _write_csv(tmp_path / "bad.csv", ["path", "split"], [["a.png", "train"]])
    with pytest.raises(MedsrError, match="missing columns"):
        read_manifest(bad)
    header = ["path", "patient_id", "split", "modality", "width", "height", "channels", "bit_depth"]
    bad = _write_csv(tmp_path / "bad2.csv", header, [["a.png", "p", "holdout", "OT", "1", "1", "1", "8"]])
    with pytest.raises(MedsrError, match="line 2"):
        read_manifest(bad)
    bad = _write_csv(tmp_path / "bad3.csv", header, [["a.png", "p", "train", "OT", "wide", "1", "1", "8"]])
    with pytest.raises(MedsrError, match="integers"):
        read_manifest(bad)
    with pytest.raises(ConfigError):
        read_manifest(bad, split="training")


def test_metadata_columns_detected_or_overridden(tmp_path):
    nih = _write_csv(
        tmp_path / "nih.csv",
        ["Image Index", "Finding Labels", "Patient ID"],
        [["00000001_000.png", "Hernia", "1"], ["00000001_001.png", "", "1"]],
    )
    resolver = PatientResolver.from_csv([nih])
    assert resolver.patient_for("x/00000001_001.png") == "1"
    odd = _write_csv(
        tmp_path / "us.csv", ["file", "source_file"], [["f0.png", "video1.mov"], ["f9.png", "video1.mov"]]
    )
    with pytest.raises(MedsrError, match="patient"):
        PatientResolver.from_csv([odd])
    resolver = PatientResolver.from_csv([odd], patient_column="source_file")
    assert resolver.patient_for("f9.png") == resolver.patient_for("f0.png") == "video1.mov"
    with pytest.raises(ConfigError, match="--patient-column"):
        PatientResolver.from_csv([nih], patient_column="subject_code")


def test_union_find_canonical_id_does_not_depend_on_table_order(tmp_path):
    t1 = _write_csv(
        tmp_path / "t1.csv", ["patient_id", "image_id"], [["zz", "i1"], ["zz", "i2"], ["yy", "i4"]]
    )
    t2 = _write_csv(tmp_path / "t2.csv", ["patientid", "filename"], [["30", "i2.jpg"], ["30", "i3.jpg"]])
    t3 = _write_csv(tmp_path / "t3.csv", ["patient", "file"], [["b7", "i3"], ["b7", "i9"]])
    for order in ([t1, t2, t3], [t3, t2, t1], [t2, t3, t1]):
        resolver = PatientResolver.from_csv(order)
        # i1-zz-i2-30-i3-b7-i9 is one chain; "30" < "b7" < "zz"
        assert {resolver.patient_for(f"i{k}.png") for k in (1, 2, 3, 9)} == {"30"}
        assert resolver.patient_for("i4.png") == "yy"
        assert resolver.patient_for("i5.png") is None
        assert len(resolver) == 2


def test_build_manifest_rejects_bad_fractions(tree):
    with pytest.raises(ConfigError):
        _build(tree, val=0.7, test=0.5)


def test_prepare_command(tree):
    result = CliRunner().invoke(
        app,
        [
            "prepare",
            str(tree["root"]),
            "--out",
            str(tree["out"]),
            "--patients",
            str(tree["meta1"]),
            "--patients",
            str(tree["meta2"]),
            "--min-size",
            "16",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 1, result.output  # broken.png could not be read
    assert "skipped" in result.output and "broken.png" in result.output and "tiny.png" in result.output
    for split in ("train", "val", "test"):
        assert split in result.output
    rows = read_manifest(tree["out"])
    assert len(rows) == 13 and all(r.split == assign_split(r.patient_id, 3, 0.1, 0.1) for r in rows)
    assert skipped_path(tree["out"]).is_file()
    (tree["root"] / "site_a" / "broken.png").unlink()
    result = CliRunner().invoke(app, ["prepare", str(tree["root"]), "--out", str(tree["out"])])
    assert result.exit_code == 0, result.output


def _metadata(path: Path, id_col: str, patient_col: str) -> dict[str, str]:
    with path.open(newline="") as handle:
        return {metadata_id(r[id_col]): r[patient_col].strip() for r in csv.DictReader(handle)}


def test_chest_xray_pair_splits_by_patient_across_both_tables(tmp_path):
    """Done-when: the two hannover folders share 46 patients under two id schemes; none crosses splits."""
    if not CHEST.is_dir():
        pytest.skip(f"{CHEST} is not available")
    tables = [CHEST / "hannover-2000.metadata.csv", CHEST / "hannover-640.metadata.csv"]
    folders = [CHEST / "hannover-2000", CHEST / "hannover-640"]  # the folder also holds other data sets now
    rows, skipped = build_manifest(folders, tmp_path / "manifest.csv", patients=tables, headers_only=True)
    assert not skipped
    assert len(rows) == len(list((CHEST / "hannover-2000").iterdir())) + len(
        list((CHEST / "hannover-640").iterdir())
    )
    splits = defaultdict(set)
    for row in rows:
        splits[row.patient_id].add(row.split)
    assert len(splits) == 46
    assert {r.source for r in rows} == {"hannover-2000", "hannover-640"}
    assert all(r.source == r.path.parent.name for r in rows)
    assert all(len(s) == 1 for s in splits.values()), "a patient appears in two splits"
    # Each image's patient agrees with both tables: images that share a raw id share a manifest patient,
    # and the manifest id is one of the raw ids of its image.
    by_2000 = _metadata(tables[0], "filename", "patientid")
    by_640 = _metadata(tables[1], "image_id", "patient_id")
    for table in (by_2000, by_640):
        groups = defaultdict(set)
        for row in rows:
            key = metadata_id(row.path.name)
            if key in table:
                groups[table[key]].add(row.patient_id)
        assert groups and all(len(g) == 1 for g in groups.values())
    raw_ids = defaultdict(set)  # manifest patient -> raw ids of all its images in either table
    for row in rows:
        key = metadata_id(row.path.name)
        assert key in by_2000 or key in by_640
        raw_ids[row.patient_id] |= {t[key] for t in (by_2000, by_640) if key in t}
    assert all(patient == min(raw) for patient, raw in raw_ids.items())


def test_prepare_command_with_no_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    result = CliRunner().invoke(app, ["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 2 and "no images found" in result.output
    assert not (tmp_path / "m.csv").exists()


def test_paths_given_through_dotdot_are_normalised(tree):
    roundabout = tree["root"] / "site_a" / ".." / "site_b"
    rows, _ = build_manifest([roundabout], tree["out"])
    assert rows and all(".." not in r.path.parts for r in rows)
    write_manifest(rows, tree["out"])
    assert read_manifest(tree["out"]) == rows


# --- sources -----------------------------------------------------------------------------------------------


@pytest.fixture()
def sites(tmp_path: Path) -> dict[str, Path]:
    """root/{site-a-640, site-a-2000, site-b}: three folders, images also in a subfolder and at the root."""
    root = tmp_path / "sites"
    files = {
        "a640_1": _png(root / "site-a-640" / "p1.png", value=1),
        "a640_2": _png(root / "site-a-640" / "p2.png", value=2),
        "a2000_1": _png(root / "site-a-2000" / "q1.png", size=(36, 30), value=3),
        "a2000_deep": _png(root / "site-a-2000" / "sub" / "deeper" / "q2.png", value=4),
        "b_1": _png(root / "site-b" / "r1.png", value=5),
        "b_2": _png(root / "site-b" / "ward" / "r2.png", rgb=True, value=6),
        "top": _png(root / "loose.png", value=7),
    }
    files["root"] = root
    files["out"] = tmp_path / "out" / "manifest.csv"
    return files


def _sources(rows) -> dict[str, str]:
    return {r.path.name: r.source for r in rows}


def test_source_is_the_first_folder_below_the_root(sites):
    rows, skipped = build_manifest([sites["root"]], sites["out"])
    assert not skipped
    assert _sources(rows) == {
        "p1.png": "site-a-640",
        "p2.png": "site-a-640",
        "q1.png": "site-a-2000",
        "q2.png": "site-a-2000",  # two folders deeper: still its site
        "r1.png": "site-b",
        "r2.png": "site-b",
        "loose.png": "sites",  # directly in the root: the root's own name
    }


def test_source_rules_merge_folders(sites):
    rules = parse_source_rules(["site-a-*=site-a", "site-b=hospital-b"])
    rows, _ = build_manifest([sites["root"]], sites["out"], sources=rules)
    got = _sources(rows)
    assert {got[n] for n in ("p1.png", "p2.png", "q1.png", "q2.png")} == {"site-a"}
    assert got["r1.png"] == got["r2.png"] == "hospital-b"
    assert got["loose.png"] == "sites"
    # the first matching rule wins; a pattern must match the whole folder name
    rows, _ = build_manifest([sites["root"]], sites["out"], sources=[("site-a-6*", "small"), ("site-*", "any")])
    got = _sources(rows)
    assert got["p1.png"] == "small" and got["q1.png"] == "any" and got["r1.png"] == "any"
    rows, _ = build_manifest([sites["root"]], sites["out"], sources=[("site", "x"), ("SITE-B", "y")])
    assert {r.source for r in rows} == {"site-a-640", "site-a-2000", "site-b", "sites"}  # case-sensitive


def test_source_with_several_and_nested_roots(sites):
    root = sites["root"]
    rows, _ = build_manifest([root / "site-a-640", root / "site-b", sites["a2000_1"]], sites["out"])
    got = _sources(rows)
    assert got["p1.png"] == got["p2.png"] == "site-a-640"  # directly in a root: the root's name
    assert got["r1.png"] == "site-b" and got["r2.png"] == "ward"  # first folder below the root site-b
    assert got["q1.png"] == "site-a-2000"  # a file given as a root: its folder
    # the deepest root that holds a file decides, whatever the order the roots come in
    for roots in ([root, root / "site-b"], [root / "site-b", root]):
        assert image_source(sites["b_2"], roots) == "ward"
        assert image_source(sites["a640_1"], roots) == "site-a-640"


def test_prepare_command_source_option(sites):
    out = sites["out"]
    result = CliRunner().invoke(app, ["prepare", str(sites["root"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {r.source for r in read_manifest(out)} == {"site-a-640", "site-a-2000", "site-b", "sites"}
    assert "site-a-640" in result.output and "site-a-2000" in result.output
    result = CliRunner().invoke(
        app, ["prepare", str(sites["root"]), "--out", str(out), "--source", "site-a-*=site-a"]
    )
    assert result.exit_code == 0, result.output
    rows = read_manifest(out)
    assert _sources(rows) == {
        "p1.png": "site-a",
        "p2.png": "site-a",
        "q1.png": "site-a",
        "q2.png": "site-a",
        "r1.png": "site-b",
        "r2.png": "site-b",
        "loose.png": "sites",
    }
    assert "site-a-640" not in result.output and "site-a" in result.output
    out.unlink()
    result = CliRunner().invoke(app, ["prepare", str(sites["root"]), "--out", str(out), "--source", "site-a"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) or "--source" in result.output
    assert not out.exists()


def test_written_manifest_keeps_the_source(sites):
    rows, _ = build_manifest([sites["root"]], sites["out"], sources=[("site-a-*", "site-a")])
    write_manifest(rows, sites["out"])
    with sites["out"].open(newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0])[-1] == "source"
    assert {r["path"]: r["source"] for r in records}["../sites/site-b/ward/r2.png"] == "site-b"
    back = read_manifest(sites["out"])
    assert back == rows
    assert [r.source for r in back] == [r.source for r in rows] and {r.source for r in back} == {
        "site-a",
        "site-b",
        "sites",
    }


def test_manifest_without_a_source_column_still_reads(tmp_path):
    header = ["path", "patient_id", "split", "modality", "width", "height", "channels", "bit_depth"]
    old = _write_csv(
        tmp_path / "old.csv",
        header,
        [["a/x.png", "p1", "train", "DX", "40", "32", "1", "8"], ["b/y.png", "p2", "test", "", "40", "32", "3", "8"]],
    )
    rows = read_manifest(old)
    assert [r.source for r in rows] == ["", ""]
    assert rows[0] == ManifestRow(tmp_path / "a" / "x.png", "p1", "train", "DX", 40, 32, 1, 8)
    assert rows[1].modality == "OT" and rows[1].channels == 3
    assert read_manifest(old, split="test") == [rows[1]]
    # an empty source cell reads as "" too, and padding is stripped
    new = _write_csv(
        tmp_path / "new.csv",
        [*header, "source"],
        [
            ["x.png", "p1", "val", "CR", "4", "4", "1", "16", ""],
            ["y.png", "p2", "val", "CR", "4", "4", "1", "8", " s1 "],
        ],
    )
    assert [r.source for r in read_manifest(new)] == ["", "s1"]


@pytest.mark.parametrize("item", ["bad", "=name", "pattern=", " = ", ""])
def test_parse_source_rules_rejects_malformed_items(item):
    with pytest.raises(ConfigError):
        parse_source_rules([item])


def test_parse_source_rules():
    assert parse_source_rules([]) == []
    assert parse_source_rules([" hannover-* = hannover ", "a=b=c"]) == [("hannover-*", "hannover"), ("a", "b=c")]


def test_source_summary_counts_patients_and_images_per_source_and_split():
    def row(patient: str, split: str, source: str, k: int) -> ManifestRow:
        return ManifestRow(Path(f"/d/{source}/{patient}_{k}.png"), patient, split, "DX", 8, 8, 1, 8, source)

    rows = [
        row("p1", "train", "a", 0),
        row("p1", "train", "a", 1),
        row("p1", "train", "a", 2),
        row("p2", "train", "a", 0),
        row("p3", "val", "a", 0),
        row("p4", "test", "b", 0),
        row("p4", "test", "b", 1),
        row("p5", "train", "b", 0),
        row("p1", "train", "b", 3),  # the same patient seen at a second site counts once per site
        row("p6", "val", "", 0),
    ]
    summary = source_summary(rows)
    assert list(summary) == ["", "a", "b"]  # sorted by name
    assert summary["a"] == {"train": (2, 4), "val": (1, 1), "test": (0, 0)}
    assert summary["b"] == {"train": (2, 2), "val": (0, 0), "test": (1, 2)}
    assert summary[""] == {"train": (0, 0), "val": (1, 1), "test": (0, 0)}
    assert source_summary([]) == {}
    total = split_summary(rows)
    assert total == {"train": (3, 6), "val": (2, 2), "test": (1, 2)}
    for split in ("train", "val", "test"):
        assert sum(s[split][1] for s in summary.values()) == total[split][1]
