"""One-shot enhancement of a study already in a PACS: fetch it by WADO-RS, enhance it, store back by STOW-RS.

``medsr enhance-study http://pacs/dicom-web/studies/1.2.3`` does what the node does for one study, without a
node: each series gets the model ``medsr upscale`` would choose (its Modality, or ``--model``), the derived
series are written with the same writer and stored into the same study. Series medsr derived earlier are
skipped, so running it twice does not enhance results.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from medsr.errors import ConfigError, one_line
from medsr.infer.files import Outcome, Source, upscale_files
from medsr.infer.modality import plan_models
from medsr.infer.settings import InferenceSettings
from medsr.models import load_model
from medsr.serve.node import derived_uids

_STUDY_URL = re.compile(r"^(https?://.+?)/studies/([0-9.]+)/?$")


@dataclass
class StudyResult:
    """What a one-shot run did: instances fetched, derived and stored, and (file, reason) failures."""

    fetched: int = 0
    skipped: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    stored: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def split_study_url(url: str) -> tuple[str, str]:
    """``http://host/dicom-web/studies/UID`` -> (DICOMweb base URL, Study Instance UID)."""
    match = _STUDY_URL.match(url.strip())
    if not match:
        raise ConfigError(f"{url!r} is not a DICOMweb study URL (expected http(s)://HOST/.../studies/UID)")
    return match[1], match[2]


def enhance_study(
    url: str,
    *,
    store_url: str | None = None,
    model: str | None = None,
    modality: str | None = None,
    settings: InferenceSettings | None = None,
    username: str | None = None,
    password: str | None = None,
    workdir: Path | None = None,
) -> StudyResult:
    """Fetch the study at ``url``, enhance its series, store the derived series to ``store_url`` (default: the
    same DICOMweb server). Unreachable servers raise :class:`ConfigError` with one line."""
    import requests  # noqa: PLC0415
    from dicomweb_client.api import DICOMwebClient  # noqa: PLC0415

    base, study_uid = split_study_url(url)
    session = requests.Session()
    if username:
        session.auth = (username, password or "")
    source = DICOMwebClient(base, session=session)
    try:
        datasets = source.retrieve_study(study_uid)
    except Exception as exc:  # noqa: BLE001 - HTTP errors, refused connections
        raise ConfigError(f"cannot fetch study {study_uid} from {base}: {one_line(exc)}") from None
    result = StudyResult(fetched=len(datasets))
    settings = settings or InferenceSettings()
    with tempfile.TemporaryDirectory(prefix="medsr-study-", dir=workdir) as tmp:
        inputs, outputs = Path(tmp) / "in", Path(tmp) / "out"
        sources = []
        for ds in datasets:
            if str(ds.get("DerivationDescription", "") or "").startswith("medsr "):
                result.skipped += 1
                continue
            path = inputs / str(ds.SeriesInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            sources.append(Source(path, path.relative_to(inputs)))
        groups, result.notes = plan_models(sources, model, modality)
        for name, group in groups:
            net = load_model(name, settings.device)
            for outcome in upscale_files(group, outputs, net, fmt="dicom", settings=settings,
                                         series=derived_uids(net)):
                result.outcomes.append(outcome)
                if outcome.error is not None:
                    result.failures.append((str(outcome.source.relative_to(inputs)), outcome.error))
        written = [o.target for o in result.outcomes if o.target is not None]
        if written:
            target = DICOMwebClient(store_url.rstrip("/"), session=session) if store_url else source
            try:
                response = target.store_instances([pydicom.dcmread(p) for p in written])
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(f"cannot store the derived series to {store_url or base}: {one_line(exc)}") from None
            failed = len(getattr(response, "FailedSOPSequence", []))
            result.stored = len(written) - failed
            if failed:
                result.failures.append((study_uid, f"{failed} derived instance(s) refused by the server"))
    return result
