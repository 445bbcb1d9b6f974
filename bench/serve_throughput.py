"""Throughput of the DICOM node end to end (Orthanc -> medsr serve -> Orthanc) beside `medsr upscale` of the same files.

A local Orthanc (Debian's orthanc) sends N CR instances (each its own study, copies of tests/data/cr_mono1_small.dcm,
440x440 -> 1760x1760 with xray-x4) to an in-process node, with 1 and then 4 concurrent senders (Orthanc store jobs);
the clock stops when every derived instance is in Orthanc. The same N files through `upscale_files` (what
`medsr upscale` runs) give the model's own time. Overhead = node seconds per image / upscale seconds per image - 1,
with the node's idle wait (idle_seconds, here 0.2 s, overlapped across series) included.

    .venv/bin/python bench/serve_throughput.py --images 12 --repeats 3
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import _bench
import torch

from medsr.infer.files import Source, upscale_files
from medsr.models import load_model
from medsr.serve import orthanc as local
from medsr.serve.config import parse_config
from medsr.serve.node import Node

ROOT = _bench.ROOT
sys.path.insert(0, str(ROOT / "tests" / "serve"))
from serve_helpers import new_study  # noqa: E402

SOURCE = ROOT / "tests" / "data" / "cr_mono1_small.dcm"


def through_node(server: local.LocalOrthanc, files: list[Path], senders: int, spool: Path) -> float:
    """Seconds from the first store request until every derived instance is in Orthanc."""
    config = {"ae_title": "MEDSR", "port": 0, "spool": str(spool), "idle_seconds": 0.2,
              "callers": [{"ae_title": server.ae_title, "hosts": ["127.0.0.1"]}],
              "destinations": {"pacs": {"type": "dicom", "ae_title": server.ae_title, "host": "127.0.0.1",
                                        "port": server.dicom_port}}}
    node = Node(parse_config(config))
    node.start()
    node.model("xray-x4")  # loaded before the clock starts, as in a running node
    server.add_modality("bench", "MEDSR", node.port)
    ids = [server.upload(path)["ID"] for path in files]
    before = len(server.get("/instances"))
    chunks = [ids[i::senders] for i in range(senders)]
    started = time.perf_counter()
    threads = [threading.Thread(target=server.store_to, args=("bench", chunk)) for chunk in chunks]
    for thread in threads:
        thread.start()
    while len(server.get("/instances")) < before + len(files):
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    for thread in threads:
        thread.join()
    node.stop()
    return seconds


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--images", type=int, default=12, help="CR instances per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (the median is reported)")
    args = _bench.parse(parser)
    reason = local.available()
    if reason:
        sys.exit(reason)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[float]] = {"upscale": [], "node, 1 sender": [], "node, 4 senders": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = load_model("xray-x4", "cpu")
        for repeat in range(args.repeats):  # interleaved, so a busy moment hits every path alike
            files = [new_study(SOURCE, tmp / f"local{repeat}" / str(i))[0] for i in range(args.images)]
            started = time.perf_counter()
            outcomes = list(upscale_files([Source(p, Path(f"{i}.dcm")) for i, p in enumerate(files)],
                                          tmp / f"out{repeat}", model, fmt="dicom"))
            runs["upscale"].append(time.perf_counter() - started)
            assert all(o.error is None for o in outcomes)
            for senders, name in ((1, "node, 1 sender"), (4, "node, 4 senders")):
                server = local.LocalOrthanc()
                try:
                    batch = [new_study(SOURCE, tmp / f"n{senders}-{repeat}" / str(i))[0] for i in range(args.images)]
                    runs[name].append(through_node(server, batch, senders, tmp / f"spool{senders}-{repeat}"))
                finally:
                    server.stop()
    medians = {name: statistics.median(values) for name, values in runs.items()}
    base = medians["upscale"] / args.images
    print(f"{args.images} CR instances 440x440 -> 1760x1760 (xray-x4, fp32, {torch.get_num_threads()} threads), "
          f"median of {args.repeats} interleaved runs; CPU {_bench.cpu_name()}, load average before "
          f"{load_before:.1f}")
    print(f"{'path':<18} {'s/image':>8} {'images/s':>9} {'overhead':>9}")
    for name, seconds in medians.items():
        per = seconds / args.images
        overhead = "" if name == "upscale" else f"{(per / base - 1) * 100:+.0f} %"
        print(f"{name:<18} {per:>8.3f} {args.images / seconds:>9.2f} {overhead:>9}")
    print(json.dumps({name: [round(v, 2) for v in values] for name, values in runs.items()}))


if __name__ == "__main__":
    main()
