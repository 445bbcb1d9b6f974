"""The DICOM node's configuration: one typed, validated object read from a YAML file.

Every setting an integration engineer touches is here, with its default; ``medsr serve --check`` validates a
file and prints one line per mistake (``node.yaml: routes.0.action: ...``), so a typo is found before the node
is wired into a PACS. The shipped example (``medsr serve --example``) is tested to validate.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medsr.errors import ConfigError
from medsr.infer.settings import DEFAULT_MAX_MEMORY, InferenceSettings, parse_memory

EXAMPLE_FILE = "node.example.yaml"


def _size(value: Any) -> int | None:
    """A byte count from ``512M``, ``2G`` or a number; ``none`` for no limit (see :func:`parse_memory`)."""
    try:
        return parse_memory(value)
    except ConfigError as exc:
        raise ValueError(str(exc).replace("memory ", "size ", 1)) from None


def _ae_title(value: str) -> str:
    """An AE title: 1-16 characters of the default repertoire, no backslash, not only spaces (PS3.5 6.2)."""
    text = value.strip()
    if not text or len(text) > 16 or "\\" in text or not text.isprintable() or not text.isascii():
        raise ValueError(f"AE title {value!r} must be 1-16 printable ASCII characters without a backslash")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Caller(_Strict):
    """A peer allowed to send: its calling AE title, and optionally the hosts (addresses) it may call from."""

    ae_title: str
    hosts: list[str] = Field(default_factory=list, description="Allowed IP addresses or networks; empty: any.")

    @field_validator("ae_title")
    @classmethod
    def _check_ae(cls, value: str) -> str:
        return _ae_title(value)

    @field_validator("hosts")
    @classmethod
    def _networks(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            ipaddress.ip_network(host, strict=False)  # raises ValueError with the bad value
        return hosts

    def allows(self, ae_title: str, address: str) -> bool:
        """Whether an association from ``ae_title`` at ``address`` comes from this caller."""
        if ae_title.strip() != self.ae_title:
            return False
        if not self.hosts:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(h, strict=False) for h in self.hosts)


class Tls(_Strict):
    """TLS for the node's listener (PEM files); with ``ca_certificates``, callers must present a certificate."""

    certificate: Path
    key: Path
    ca_certificates: Path | None = None

    @model_validator(mode="after")
    def _files_exist(self) -> Tls:
        for name in ("certificate", "key", "ca_certificates"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} {path}: no such file")
        return self


class DicomDestination(_Strict):
    """A DICOM Storage SCP to send results to (C-STORE), e.g. the PACS."""

    type: Literal["dicom"] = "dicom"
    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    calling_ae_title: str | None = Field(None, description="Our AE title towards it (default: the node's).")
    tls_ca_certificates: Path | None = Field(None, description="Use TLS, trusting these CA certificates (PEM).")
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("ae_title", "calling_ae_title")
    @classmethod
    def _check_ae(cls, value: str | None) -> str | None:
        return value if value is None else _ae_title(value)


class StowDestination(_Strict):
    """A DICOMweb server to store results to (STOW-RS), e.g. ``http://pacs:8042/dicom-web``."""

    type: Literal["stow"]
    url: str
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url {url!r} must start with http:// or https://")
        return url.rstrip("/")


Destination = Annotated[DicomDestination | StowDestination, Field(discriminator="type")]


class Match(_Strict):
    """What a route matches; every field given must match (glob patterns, case-insensitive)."""

    modality: str | None = None
    body_part: str | None = Field(None, description="BodyPartExamined")
    calling_ae: str | None = None
    series_description: str | None = None

    def matches(self, attributes: dict[str, str]) -> bool:
        """Whether every pattern given matches the series' attribute of the same name."""
        for name, pattern in self.model_dump(exclude_none=True).items():
            if not fnmatch.fnmatchcase(attributes.get(name, "").upper(), pattern.upper()):
                return False
        return True


class Route(_Strict):
    """A routing rule: the first route whose ``match`` fits a series decides what happens to it."""

    match: Match = Field(default_factory=Match)
    action: Literal["enhance", "pass", "ignore"] = "enhance"
    model: str | None = Field(None, description="Model name or checkpoint (default: chosen by Modality).")
    destinations: list[str] | None = Field(None, description="Destination names (default: default_destinations).")


class Limits(_Strict):
    """Sizes that protect the node: larger instances or associations and a full spool get 'out of resources'."""

    max_instance_bytes: int | None = 2 * 2**30
    max_association_bytes: int | None = 64 * 2**30
    max_spool_bytes: int | None = None
    min_free_bytes: int = 2**30

    @field_validator("max_instance_bytes", "max_association_bytes", "max_spool_bytes", "min_free_bytes",
                     mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> int | None:
        return _size(value)


class Http(_Strict):
    """The local HTTP port for ``/healthz`` and Prometheus ``/metrics``."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


class Inference(_Strict):
    """How models run (the same settings as ``medsr upscale``; see :class:`medsr.infer.InferenceSettings`)."""

    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    tile: int = 512
    overlap: int = 32
    max_memory: int | None = DEFAULT_MAX_MEMORY
    colour: Literal["luminance", "per-channel"] = "luminance"
    clip: bool = True
    threads: int | None = Field(None, ge=1)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int | None:
        return _size(value)

    def settings(self) -> InferenceSettings:
        """The equivalent :class:`InferenceSettings` (validated there too)."""
        return InferenceSettings(tile=self.tile, overlap=self.overlap, device=self.device, precision=self.precision,
                                 max_memory=self.max_memory, clip_to_input=self.clip, colour=self.colour)


class NodeConfig(_Strict):
    """A medsr DICOM node: who may send, where received instances wait, what is done with them, where results go.

    ``idle_seconds``: a series is processed once no instance of it arrived for this long. ``keep_files``: keep
    received and derived files in the spool after they were sent (default: remove them, keep the ledger).
    """

    ae_title: str
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    spool: Path
    idle_seconds: float = Field(10.0, ge=0)
    callers: list[Caller] = Field(min_length=1)
    destinations: dict[str, Destination] = Field(default_factory=dict)
    default_destinations: list[str] | None = None
    routes: list[Route] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    tls: Tls | None = None
    http: Http | None = None
    audit_log: Path | None = None
    inference: Inference = Field(default_factory=Inference)
    keep_files: bool = False
    send_retry_seconds: float = Field(2.0, gt=0, description="First retry delay; doubles up to send_retry_max.")
    send_retry_max_seconds: float = Field(300.0, gt=0)

    @field_validator("ae_title")
    @classmethod
    def _check_ae(cls, value: str) -> str:
        return _ae_title(value)

    @model_validator(mode="after")
    def _references(self) -> NodeConfig:
        names = set(self.destinations)
        wanted = [("default_destinations", d) for d in self.default_destinations or []]
        wanted += [(f"routes.{i}.destinations", d) for i, r in enumerate(self.routes) for d in r.destinations or []]
        for where, name in wanted:
            if name not in names:
                known = ", ".join(sorted(names)) or "none are defined"
                raise ValueError(f"{where}: unknown destination {name!r} ({known})")
        return self

    @property
    def audit_path(self) -> Path:
        return self.audit_log or self.spool / "audit.jsonl"

    def destinations_for(self, route: Route | None) -> list[str]:
        """The destination names a series goes to: the route's, else the defaults, else every destination."""
        if route is not None and route.destinations is not None:
            return list(route.destinations)
        if self.default_destinations is not None:
            return list(self.default_destinations)
        return list(self.destinations)

    def route_for(self, attributes: dict[str, str]) -> Route | None:
        """The first route matching a series' attributes (modality, body_part, calling_ae, series_description)."""
        return next((route for route in self.routes if route.match.matches(attributes)), None)

    def allows(self, ae_title: str, address: str) -> bool:
        """Whether a calling AE title at ``address`` may associate."""
        return any(caller.allows(ae_title, address) for caller in self.callers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in ("dicom", "stow", "function-after"))]
    return ".".join(parts) or "(top level)"


def parse_config(data: Any, source: str = "config") -> NodeConfig:
    """Validate a mapping as a :class:`NodeConfig`; every mistake is one line of the :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{source}: {_location(error['loc'])}: {message}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node configuration file (YAML); relative paths in it are relative to the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict):
        data = _resolve_paths(data, path.parent)
    return parse_config(data, str(path))


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    data = dict(data)
    for key in ("spool", "audit_log"):
        if isinstance(data.get(key), str):
            data[key] = str(base / data[key])
    if isinstance(data.get("tls"), dict):
        data["tls"] = {k: str(base / v) if isinstance(v, str) else v for k, v in data["tls"].items()}
    return data


def example_text() -> str:
    """The shipped, commented example configuration."""
    return resources.files("medsr.serve").joinpath(EXAMPLE_FILE).read_text(encoding="utf-8")
