"""Jobs with a results table on the local engine: the table, units, resume and --retry-failed (no Ray needed)."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest
from job_archive import BAD, SERIES, make_archive, tiny_model
from typer.testing import CliRunner

from medsr.cli import app, main
from medsr.errors import ConfigError
from medsr.infer.files import collect_sources
from medsr.infer.jobs import plan_units, upscale_job
from medsr.infer.results import COLUMNS, ResultRow, ResultsTable, ResultsTableError, file_digest


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    return root / "in", make_archive(root / "in"), tiny_model(root)


def upscale(*args: str):
    return CliRunner().invoke(app, ["upscale", *map(str, args), "--device", "cpu", "--threads", "1"])


def test_the_table_survives_a_torn_last_line_and_compacts_to_one_row_per_input(tmp_path) -> None:
    table = ResultsTable(tmp_path / "t.csv")
    table.append([ResultRow("/a", "failed", reason="bad, \"quoted\"\nreason"), ResultRow("/b", "done", output="/o")])
    with open(table.path, "ab") as handle:  # a job killed while writing a row
        handle.write(b'/c,done,/x,"unfinished')
    assert set(table.load()) == {"/a", "/b"}
    table.compact()  # what a job does when it starts
    table.append([ResultRow("/a", "done", output="/oa", bytes=3)])
    rows = table.load()
    assert set(rows) == {"/a", "/b"} and rows["/a"].status == "done" and rows["/a"].bytes == 3
    compacted = table.compact(["/b", "/a"])
    assert list(compacted) == ["/b", "/a"]
    with open(table.path, newline="") as handle:
        records = list(csv.reader(handle))
    assert tuple(records[0]) == COLUMNS and [r[0] for r in records[1:]] == ["/b", "/a"]


def test_a_foreign_csv_is_refused_with_one_line(tmp_path) -> None:
    (tmp_path / "other.csv").write_text("name,value\nx,1\n")
    with pytest.raises(ResultsTableError, match=r"other.csv: not a medsr results table"):
        ResultsTable(tmp_path / "other.csv").load()


def test_a_series_and_clashing_names_become_one_unit_each(tmp_path, archive) -> None:
    inputs, _, _ = archive
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "crop00.jpg").write_bytes((inputs / "png" / "photo.jpg").read_bytes())
    sources, _ = collect_sources([inputs, tmp_path])
    units = plan_units([("m", sources)])
    by_first = {str(u.sources[0].relative): [str(s.relative) for s in u.sources] for u in units}
    assert by_first["series/slice1.dcm"] == SERIES
    assert by_first["png/crop00.png"] == ["png/crop00.png", "png/crop00.jpg"]  # both would write png/crop00.png
    assert sum(len(u.sources) for u in units) == 31 and len(units) == 31 - 2 - 1


def test_local_job_resumes_from_its_table_and_writes_what_plain_local_writes(tmp_path, archive) -> None:
    inputs, expected, model = archive
    out, table = tmp_path / "out", tmp_path / "results.csv"
    first = upscale(inputs, "-o", out, "--model", model, "--results", table)
    assert first.exit_code == 1 and "27 of 30 input(s) done" in first.output and "30 run now" in first.output
    rows = ResultsTable(table).load()
    assert len(rows) == 30 and sum(r.status == "failed" for r in rows.values()) == 3
    assert all(file_digest(r.output) == (r.bytes, r.sha256) for r in rows.values() if r.status == "done")
    plain = upscale(inputs, "-o", tmp_path / "plain", "--model", model)
    assert plain.exit_code == 1
    for name in filter(None, expected.values()):
        if not name.endswith(".dcm"):  # derived DICOMs get new UIDs each run
            assert (out / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    # an output lost since: only its input runs again; failed inputs stay failed unless --retry-failed
    (out / "png" / "crop03.png").unlink()
    again = upscale(inputs, "-o", out, "--model", model, "--results", table)
    assert again.exit_code == 1 and "1 run now, 29 settled earlier" in again.output, again.output
    assert "3 input(s) failed in an earlier run" in again.output
    assert ResultsTable(table).load()[os.path.abspath(inputs / "png/crop03.png")].is_complete()
    retry = upscale(inputs, "-o", out, "--model", model, "--results", table, "--retry-failed")
    assert "3 run now, 27 settled earlier" in retry.output, retry.output
    # a lost slice reruns its whole series, so the three keep one new Series Instance UID
    (out / SERIES[1]).unlink()
    series = upscale(inputs, "-o", out, "--model", model, "--results", table)
    assert "3 run now" in series.output, series.output
    assert len({__import__("pydicom").dcmread(out / name).SeriesInstanceUID for name in SERIES}) == 1
    assert {Path(r.input).relative_to(inputs).as_posix() for r in ResultsTable(table).load().values()
            if r.status == "failed"} == BAD


def test_without_ray_the_ray_engine_says_how_to_get_it_in_one_line(tmp_path, monkeypatch, capsys, archive) -> None:
    inputs, _, model = archive
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(sys, "argv", ["medsr", "upscale", str(inputs / "png" / "crop00.png"), "-o", str(tmp_path),
                                      "--model", str(model), "--engine", "ray"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "pip install 'medsr[ray]'" in lines[0], lines
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_an_output_url_is_refused_before_any_work(tmp_path, archive) -> None:
    inputs, _, model = archive
    sources, _ = collect_sources([inputs / "png" / "crop00.png"])
    with pytest.raises(ConfigError, match=r"s3://bucket/out: give a folder path every worker reaches"):
        upscale_job([(str(model), sources)], "s3://bucket/out", tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()
