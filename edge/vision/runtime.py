"""Model backends: one small interface; onnxruntime on the CPU is the implementation today.

Wrappers (detector, embedder, PAD model) receive a backend from outside and call ``run`` only, so an
NPU backend can replace onnxruntime without touching pre- and post-processing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import ModelError

log = logging.getLogger(__name__)


class InferenceBackend(Protocol):
    @property
    def input_name(self) -> str:
        """The model's input tensor name."""
        ...

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run the model on one NCHW float32 tensor and return its outputs in graph order."""
        ...


class OnnxBackend:
    """An onnxruntime CPU session with explicit threading.

    ``threads`` is the intra-op thread count. Spinning is disabled so idle workers do not burn the cores
    that Numba and the camera need (DESIGN.md, target boards). ``memory_arena`` keeps onnxruntime's CPU arena
    and memory-pattern planning: a little faster, but the arena only grows (bench/daemon_memory.py); off by
    default for a 1 GB board.
    """

    def __init__(self, path: Path, *, threads: int = 2, memory_arena: bool = False, memory_pattern: bool | None = None,
                 prepack: bool = True) -> None:
        """``memory_pattern`` (default: as ``memory_arena``) plans each input shape's buffers once; with
        inputs of many shapes, as a detector sees across photographs, it gained nothing over the arena alone
        (YuNet 3.2 ms either way, 4.5 without the arena). ``prepack=False`` skips onnxruntime's re-layout
        of constant weights at session creation: for the embedders, whose weights sit mostly in one-row
        products, it saves 8-24 ms of start-up and no time per call (bench/README.md, start-up); the
        detector's convolutions gain from it."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = memory_arena
        options.enable_mem_pattern = memory_arena if memory_pattern is None else memory_pattern
        if not prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise ModelError(f"onnxruntime cannot load {path}: {exc}", code="model_corrupt") from exc
        self.path = path
        self.input_name = self._session.get_inputs()[0].name
        self.output_names = [o.name for o in self._session.get_outputs()]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        try:
            outputs = self._session.run(self.output_names, {self.input_name: tensor})
        except Exception as exc:
            raise ModelError(f"inference failed in {self.path.name}: {exc}", code="model_runtime") from exc
        return [np.asarray(o) for o in outputs]


class LazyBackend:
    """A backend whose session is built on its first run, for one that is rarely needed (the detector's
    large retry pass, edge/vision/face_stage.py): start-up does not pay for it (YuNet's session: 5-10 ms here).
    The model file is the one the caller already checked; building is locked, so concurrent first calls
    build one session."""

    def __init__(self, build: Callable[[], InferenceBackend]) -> None:
        self._build = build
        self._backend: InferenceBackend | None = None
        self._lock = threading.Lock()

    def _get(self) -> InferenceBackend:
        with self._lock:
            if self._backend is None:
                self._backend = self._build()
            return self._backend

    @property
    def built(self) -> bool:
        return self._backend is not None

    @property
    def input_name(self) -> str:
        return self._get().input_name

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self._get().run(tensor)
