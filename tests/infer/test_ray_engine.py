"""``medsr upscale --engine ray`` on a real two-node Ray cluster on this machine (one CPU per node).

The cluster is started once for the module with ``ray start`` and stopped by process id at the end (see
ray_cluster.py). Each job runs the ``medsr`` command in its own process, as a user would, against that cluster.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

pytest.importorskip("ray.data", reason="the ray extra is not installed (pip install 'medsr[ray]')")

from job_archive import BAD, SERIES, make_archive, tiny_model  # noqa: E402
from ray_cluster import RayCluster  # noqa: E402

from medsr.cli import app  # noqa: E402
from medsr.infer.results import RESULTS_NAME, file_digest  # noqa: E402

pytestmark = pytest.mark.slow
JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def cluster():
    started = RayCluster(nodes=2, timeout=180)
    try:
        yield started
    finally:
        started.stop()
        assert not started.pids(), "processes of the test cluster survived"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The archive (inputs -> expected outputs), the tiny model and a folder for this module's outputs."""
    root = tmp_path_factory.mktemp("ray")
    expected = make_archive(root / "in")
    return root, expected, tiny_model(root)


def command(cluster: RayCluster, inputs: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "medsr", "upscale", str(inputs), "-o", str(out), "--model", str(model),
            "--device", "cpu", "--engine", "ray", "--address", cluster.address, "--workers", "2", "--threads", "1",
            *extra]


def start(cluster: RayCluster, *args: str) -> subprocess.Popen:
    return subprocess.Popen(args, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"the job did not end in {JOB_TIMEOUT} s:\n{output[-3000:]}")
    return process.returncode, output


def table(out: Path) -> list[dict[str, str]]:
    path = out / RESULTS_NAME
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("finished")]


def wait_for_rows(out: Path, count: int, process: subprocess.Popen) -> list[dict[str, str]]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if len(rows := table(out)) >= count:
            return rows
        time.sleep(0.05)
    pytest.fail(f"the job wrote fewer than {count} rows before it ended: {finish(process)[1][-3000:]}")


def visible_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and p.name != RESULTS_NAME)


def check_complete(out: Path, inputs: Path, expected: dict[str, str]) -> list[dict[str, str]]:
    """The table has one correct row per input and the output folder exactly the expected files, once each."""
    rows = table(out)
    by_input = {row["input"]: row for row in rows}
    assert len(rows) == len(by_input) == 30
    assert set(by_input) == {os.path.abspath(inputs / name) for name in expected}
    for name, output in expected.items():
        row = by_input[os.path.abspath(inputs / name)]
        if name in BAD:
            assert row["status"] == "failed" and row["reason"] and not row["output"], row
            continue
        assert row["status"] == "done" and row["reason"] == "" and row["model"] == "tiny-x4", row
        assert row["output"] == os.path.abspath(out / output)
        assert file_digest(row["output"]) == (int(row["bytes"]), row["sha256"])
        assert float(row["seconds"]) > 0
    assert visible_files(out) == sorted(v for v in expected.values() if v)
    return rows


def test_a_job_on_two_nodes_writes_every_output_and_a_complete_table(cluster, job) -> None:
    root, expected, model = job
    code, output = finish(start(cluster, *command(cluster, root / "in", root / "ray", model)))
    assert code == 1, output  # three bad files: reported, and the exit status says so
    assert "27 of 30 input(s) done" in output and "30 run now" in output, output
    assert "3 file(s) failed" in output and all(name.split("/")[1] in output for name in BAD), output
    rows = check_complete(root / "ray", root / "in", expected)
    reasons = {Path(row["input"]).name: row["reason"] for row in rows}
    assert "truncated" in reasons["cut.png"] or "cannot" in reasons["cut.png"], reasons["cut.png"]
    # the series ran as one unit: one worker, one new Series Instance UID for its three slices
    series_rows = [row for row in rows if "/series/" in row["input"]]
    assert len({row["worker"] for row in series_rows}) == 1
    derived = [pydicom.dcmread(root / "ray" / name) for name in SERIES]
    source_uid = pydicom.dcmread(root / "in" / SERIES[0]).SeriesInstanceUID
    assert len({ds.SeriesInstanceUID for ds in derived}) == 1 and derived[0].SeriesInstanceUID != source_uid
    assert sorted(int(ds.InstanceNumber) for ds in derived) == [1, 2, 3]


def test_fp32_outputs_are_byte_identical_to_the_local_engine(cluster, job, one_torch_thread) -> None:
    root, expected, model = job
    if not (root / "ray" / RESULTS_NAME).exists():
        pytest.skip("needs the outputs of the two-node job above")
    local = root / "local"
    result = CliRunner().invoke(app, ["upscale", str(root / "in"), "-o", str(local), "--model", str(model),
                                      "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 1, result.output
    assert visible_files(local) == visible_files(root / "ray")
    for name in filter(None, expected.values()):
        if name.endswith(".dcm"):  # new UIDs and times differ by design; the pixels must not
            ours, theirs = pydicom.dcmread(root / "ray" / name), pydicom.dcmread(local / name)
            assert ours.PixelData == theirs.PixelData and ours.Rows == theirs.Rows
        else:
            assert (root / "ray" / name).read_bytes() == (local / name).read_bytes(), name
    assert not (local / RESULTS_NAME).exists()  # the local engine without --results writes what it always did


def test_a_worker_killed_mid_job_is_replaced_and_every_output_written_once(cluster, job) -> None:
    root, expected, model = job
    out = root / "killed"
    process = start(cluster, *command(cluster, root / "in", out, model))
    rows = wait_for_rows(out, 3, process)
    pid = int(rows[-1]["worker"].rsplit(":", 1)[1])
    assert pid in cluster.pids()  # a process of this test's cluster, nobody else's
    os.kill(pid, signal.SIGKILL)
    killed_at = len(table(out))
    code, output = finish(process)
    assert code == 1, output
    assert killed_at < 30, "the job ended before the worker was killed"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # it really died, and the job finished without it
    check_complete(out, root / "in", expected)


def test_a_stopped_job_run_again_does_only_the_rest(cluster, job) -> None:
    root, expected, model = job
    out = root / "stopped"
    args = command(cluster, root / "in", out, model)
    process = start(cluster, *args)
    wait_for_rows(out, 10, process)
    process.send_signal(signal.SIGKILL)  # the hardest stop: no chance to tidy up
    finish(process)
    before = {row["input"]: row for row in table(out)}
    settled = {key: row for key, row in before.items() if row["status"] in ("done", "failed")}
    mtimes = {row["output"]: os.stat(row["output"]).st_mtime_ns for row in settled.values() if row["output"]}
    assert 10 <= len(settled) < 30
    code, output = finish(start(cluster, *args))
    assert code == 1, output
    rows = check_complete(out, root / "in", expected)
    assert f"{30 - len(settled)} run now, {len(settled)} settled earlier" in output, output
    after = {row["input"]: row for row in rows}
    for key, row in settled.items():
        assert after[key]["finished"] == row["finished"] and after[key]["worker"] == row["worker"]
    assert {path: os.stat(path).st_mtime_ns for path in mtimes} == mtimes  # not rewritten

