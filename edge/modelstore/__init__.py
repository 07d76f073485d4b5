"""Model manifest, install-time fetch and integrity checks. Nothing here downloads at run time."""

from edge.modelstore.manifest import ModelManifest, ModelSpec, default_model_dir, load_manifest, resolve_model

__all__ = ["ModelManifest", "ModelSpec", "default_model_dir", "load_manifest", "resolve_model"]
