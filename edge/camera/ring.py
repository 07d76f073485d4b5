"""Frames in shared memory between the capture helper process and the daemon: a small ring of slots.

Layout: a header (magic, width, height, channels, slots) and ``slots`` slots of (sequence int64, timestamp
float64, pixels). The writer marks a slot -1, copies the frame, writes its timestamp, then its sequence, and
only then announces the sequence on its pipe (edge.camera.helper). The pipe's system calls order the memory
writes before the reader sees the announcement; the reader copies the slot and checks the slot's sequence
before and after (a seqlock), so a slot overwritten during the copy is detected, never returned torn.

stdlib and numpy only: this module is imported by the helper on the system Python.
"""

from __future__ import annotations

import struct
from multiprocessing import shared_memory

import numpy as np

MAGIC = b"EDGERNG1"
HEADER = struct.Struct("<8sIIII")
SLOT_HEADER = struct.Struct("<qd")


class TornRead(Exception):
    """The writer lapped the reader during a copy: ask for a newer frame."""


class FrameRing:
    def __init__(self, memory: shared_memory.SharedMemory, *, owner: bool) -> None:
        self._memory = memory
        self._owner = owner
        assert memory.buf is not None
        self._buf: memoryview = memory.buf
        magic, self.width, self.height, self.channels, self.slots = HEADER.unpack_from(self._buf, 0)
        if magic != MAGIC:
            raise ValueError(f"shared memory {memory.name} is not a frame ring")
        self.frame_bytes = self.width * self.height * self.channels
        self.slot_bytes = SLOT_HEADER.size + self.frame_bytes

    @property
    def name(self) -> str:
        return self._memory.name

    @classmethod
    def create(cls, width: int, height: int, channels: int = 3, slots: int = 4) -> FrameRing:
        size = HEADER.size + slots * (SLOT_HEADER.size + width * height * channels)
        memory = shared_memory.SharedMemory(create=True, size=size)
        buf = memory.buf
        assert buf is not None
        HEADER.pack_into(buf, 0, MAGIC, width, height, channels, slots)
        for index in range(slots):
            SLOT_HEADER.pack_into(buf, HEADER.size + index * (SLOT_HEADER.size + width * height * channels),
                                  0, 0.0)
        return cls(memory, owner=True)

    @classmethod
    def attach(cls, name: str) -> FrameRing:
        # The helper must not unlink (or warn about) memory the daemon owns: take it off the resource tracker.
        memory = shared_memory.SharedMemory(name=name)
        from multiprocessing import resource_tracker

        resource_tracker.unregister(memory._name, "shared_memory")  # type: ignore[attr-defined]
        return cls(memory, owner=False)

    def _offset(self, seq: int) -> int:
        return HEADER.size + (seq % self.slots) * self.slot_bytes

    def write(self, seq: int, timestamp: float, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, self.channels) or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not fit the ring "
                             f"({self.height}, {self.width}, {self.channels}) uint8")
        offset = self._offset(seq)
        SLOT_HEADER.pack_into(self._buf, offset, -1, 0.0)
        start = offset + SLOT_HEADER.size
        self._buf[start:start + self.frame_bytes] = np.ascontiguousarray(frame).reshape(-1).data
        SLOT_HEADER.pack_into(self._buf, offset, seq, timestamp)

    def read(self, seq: int) -> tuple[float, np.ndarray]:
        """A copy of frame ``seq``; TornRead when its slot no longer holds it."""
        offset = self._offset(seq)
        before, timestamp = SLOT_HEADER.unpack_from(self._buf, offset)
        start = offset + SLOT_HEADER.size
        frame = np.frombuffer(self._buf, np.uint8, self.frame_bytes, start).copy()
        after, _ = SLOT_HEADER.unpack_from(self._buf, offset)
        if before != seq or after != seq:
            raise TornRead(seq)
        return timestamp, frame.reshape(self.height, self.width, self.channels)

    def close(self) -> None:
        self._buf.release()
        self._memory.close()
        if self._owner:
            self._memory.unlink()
