"""Read ``models/manifest.toml`` and resolve a model name to a verified file on disk."""

from __future__ import annotations

import hashlib
import os
import platform
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError

FETCH_HINT = "run `edge models fetch` (scripts/setup.sh does it) to install the models"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    file: str
    task: str
    license: str
    source: str
    member: str
    source_sha256: str
    transform: str
    sha256: str
    #: Needed only by a non-default configuration: a failed fetch is reported, not fatal.
    optional: bool = False


@dataclass(frozen=True, kw_only=True)
class ModelManifest:
    path: Path
    sources: dict[str, dict[str, str]]
    models: dict[str, ModelSpec]

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise ModelError(f"unknown model {name!r}; the manifest lists {sorted(self.models)}") from None


def manifest_path() -> Path:
    override = os.environ.get("EDGE_MODEL_MANIFEST")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "models" / "manifest.toml"


def load_manifest(path: Path | None = None, machine: str | None = None) -> ModelManifest:
    """The manifest, each model's entry as this machine takes it: a ``[models.NAME.machine.ARCH]`` table
    (ARCH as ``platform.machine()`` names it, e.g. ``x86_64``) replaces the fields it names, so one
    architecture can pin a file built for its own kernels (docs/MODELS.md)."""
    path = path or manifest_path()
    machine = machine or platform.machine()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model manifest not found at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model manifest {path} is not valid TOML: {exc}", code="model_corrupt") from exc
    models = {}
    for name, fields in raw.get("models", {}).items():
        fields = dict(fields)
        machines = fields.pop("machine", {})
        overrides = machines.get(machine, {}) if isinstance(machines, dict) else None
        if not isinstance(overrides, dict):
            raise ModelError(f"model manifest {path}: [models.{name}.machine] must hold one table per machine",
                             code="model_corrupt")
        try:
            models[name] = ModelSpec(name=name, **{**fields, **overrides})
        except TypeError as exc:  # a field missing or unknown, here or in this machine's table
            raise ModelError(f"model manifest {path}: [models.{name}] (on {machine}): {exc}",
                             code="model_corrupt") from None
    return ModelManifest(path=path, sources=raw.get("source", {}), models=models)


def default_model_dir() -> Path:
    """Where fetched models live: ``$EDGE_MODEL_DIR``, else ``$XDG_DATA_HOME/edge/models``."""
    override = os.environ.get("EDGE_MODEL_DIR")
    if override:
        return Path(override)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "edge" / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(name: str, model_dir: Path | None = None, manifest: ModelManifest | None = None) -> Path:
    """Return the path of model ``name`` after checking its sha256 against the manifest.

    Raises ModelError (``model_missing`` or ``model_corrupt``) with the command that fixes it.
    """
    manifest = manifest or load_manifest()
    spec = manifest.spec(name)
    path = (model_dir or default_model_dir()) / spec.file
    if not path.is_file():
        raise ModelError(f"model {name!r} not found at {path}; {FETCH_HINT}", model=name, path=str(path))
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ModelError(
            f"model {name!r} at {path} has sha256 {actual}, expected {spec.sha256}: the file is altered or "
            f"from another release; delete it and {FETCH_HINT}",
            code="model_corrupt",
            model=name,
            path=str(path),
        )
    return path
