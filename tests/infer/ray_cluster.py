"""A real two-node Ray cluster on this machine for tests: started with ``ray start``, stopped by process id.

``ray stop`` would stop every Ray process of this user on the machine (other test runs included), so
:meth:`RayCluster.stop` ends only the processes that belong to this cluster: those whose command line names its
own temporary folder or its GCS address, and their descendants. Every port is one the OS reported free.
Ray advertises the machine's own interface address even when given 127.0.0.1 (``resolve_ip_for_localhost``),
so the address the cluster reports is used to connect.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medsr.net import free_port

RAY = Path(sys.executable).with_name("ray")
_PORT_OPTIONS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")


def _ports(options: tuple[str, ...]) -> list[str]:
    return [part for option in options for part in (option, str(free_port()))]


class RayCluster:
    """A head node and ``nodes - 1`` worker nodes, each with one CPU; ``address`` is what ``ray.init`` takes."""

    def __init__(self, nodes: int = 2, timeout: float = 120.0) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="medsr-ray-", dir="/tmp"))  # short: socket paths <= 107
        # token authentication with a token of its own: only this test's processes can join or use the cluster,
        # whatever ~/.ray/auth_token holds (Ray turns token mode on by itself when that file exists)
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": os.pathsep.join(sys.path),
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.address = ""
        self._started: list[str] = []
        head = self._ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
                         "--num-cpus", "1", "--include-dashboard=false", "--disable-usage-stats",
                         "--ray-client-server-port", str(free_port()), "--dashboard-port", str(free_port()),
                         *_ports(_PORT_OPTIONS), timeout=timeout)
        match = re.search(r"ray start --address='([^']+)'", head)
        if not match:
            self.stop()
            raise RuntimeError(f"ray start --head gave no address:\n{head[-2000:]}")
        self.address = match[1]
        for _ in range(nodes - 1):
            self._ray("start", "--address", self.address, "--num-cpus", "1", "--disable-usage-stats",
                      *_ports(_PORT_OPTIONS), timeout=timeout)

    def _ray(self, *args: str, timeout: float) -> str:
        try:
            done = subprocess.run([str(RAY), *args, "--temp-dir", str(self.temp_dir)], env=self.env, timeout=timeout,
                                  capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray {' '.join(args[:2])} failed:\n{(done.stdout + done.stderr)[-2000:]}")
        return done.stdout + done.stderr

    def pids(self) -> set[int]:
        """This cluster's processes: command lines naming its temp folder or GCS address, and their descendants."""
        marks = [str(self.temp_dir)] + ([self.address] if self.address else [])
        parents: dict[int, int] = {}
        ours: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            if any(mark in cmdline for mark in marks):
                ours.add(int(entry.name))
        grown = True
        while grown:
            children = {pid for pid, parent in parents.items() if parent in ours} - ours
            grown = bool(children)
            ours |= children
        ours.discard(os.getpid())
        return ours

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM this cluster's processes, SIGKILL what is left after ``grace`` seconds; remove the temp folder."""
        pids = self.pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5)
            while time.monotonic() < deadline and (pids := self.pids() & pids):
                time.sleep(0.2)
            if not pids:
                break
        shutil.rmtree(self.temp_dir, ignore_errors=True)
