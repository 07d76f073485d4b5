"""The liveness window as a person meets it at the gate: which frames, when the prompt comes, what is kept.

Between the card and the decision the camera shows a person who is still lowering the phone, then answers
a prompt, and after a refused answer reads a hint and turns back. The window starts with the first frame
that shows a face (so a prompt never comes to a hidden face, and the challenge's clock starts there); a
retry's window starts ``RETRY_SETTLE_S`` after the refused answer; a window keeps the full frames its
checks can read (every ``KEEP_EVERY``-th for the liveness cues, the ``MATCH_FRAMES`` largest faces for the
match) and only the detections of the others (bench/window_memory.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from edge.camera.base import TimedFrame
from edge.liveness.checker import PROMPTS
from edge.liveness.temporal import Challenge
from edge.vision.types import Face

#: Upper bound on a challenge window (5 s at 30 fps, above the latest prompt plus its answer window: 3.5 s).
MAX_WINDOW_FRAMES = 150
#: How long the liveness window waits for a face before it starts (seconds of frames): the phone that showed
#: the card is often still in front of the face. The challenge's prompt is timed from the window's start.
FACE_WAIT_S = 2.0
#: Full frames a liveness window keeps (a challenge window is up to 105 frames, 97 MB at 640x480): every
#: KEEP_EVERY-th, which the liveness cues' picks come from, and the MATCH_FRAMES with the largest face so
#: far, which the match embeds; the others keep only their detections.
KEEP_EVERY = 4
MATCH_FRAMES = 3
#: After this long without a face the person is asked to look at the camera (seconds).
LOOK_PROMPT_AFTER_S = 0.5
#: Between a refused answer and the retry's window (seconds of frames, read and not kept): the person reads
#: the hint and turns back to the camera, which in the retry's window would read as a head already moving.
RETRY_SETTLE_S = 1.5

EventSink = Callable[[str, str], None]  # (kind, text): kind is "prompt" or a stage name for progress
#: A window: the detections of every frame (seconds from the window's start) and the frames kept (None: not).
Window = tuple[list[tuple[float, list[Face]]], list[np.ndarray | None]]


class Detector(Protocol):
    def detect(self, frame: np.ndarray) -> list[Face]: ...


def settle(frames: Iterator[TimedFrame], check_time: Callable[[], None]) -> None:
    """Let ``RETRY_SETTLE_S`` of frames pass (the camera's time): the hint is read, the head comes back."""
    since: float | None = None
    for t, _ in frames:
        check_time()
        since = t if since is None else since
        if t - since >= RETRY_SETTLE_S:
            return


def capture_window(frames: Iterator[TimedFrame], detector: Detector, check_time: Callable[[], None],
                   challenge: Challenge | None, emit: EventSink, *, liveness_frames: int) -> Window:
    """Frames for liveness: ``liveness_frames`` of natural movement, or, with a challenge, until the
    prompt plus its response window has passed (a person needs time to react and turn). The window
    starts with the first frame that shows a face, so the prompt never comes while the phone that showed
    the card still hides it; after ``FACE_WAIT_S`` without one, no window (the checker says no_face)."""
    detections: list[tuple[float, list[Face]]] = []
    images: list[np.ndarray | None] = []
    largest: list[tuple[float, int]] = []  # (eye distance, index): the frames kept for the match
    t0: float | None = None
    waiting_since: float | None = None
    prompted = asked = False
    answer_by = challenge.prompt_at_s + challenge.window_s if challenge else None
    for t, frame in frames:
        check_time()
        found = detector.detect(frame)
        if t0 is None:
            waiting_since = t if waiting_since is None else waiting_since
            if not found:
                if t - waiting_since >= FACE_WAIT_S:
                    break
                if not asked and t - waiting_since >= LOOK_PROMPT_AFTER_S:
                    emit("prompt", PROMPTS["no_face"])  # the phone may still be in front of the face
                    asked = True
                continue
            t0 = t
        if challenge and not prompted and t - t0 >= challenge.prompt_at_s:
            emit("prompt", challenge.prompt)
            prompted = True
        detections.append((t - t0, found))
        images.append(frame)
        keep_usable(images, largest, found)
        if answer_by is not None:
            if t - t0 >= answer_by or len(images) >= MAX_WINDOW_FRAMES:
                break
        elif len(images) >= liveness_frames:
            break
    return detections, images


def keep_usable(images: list[np.ndarray | None], largest: list[tuple[float, int]], found: list[Face]) -> None:
    """Drop the newest frame's pixels unless it is on the KEEP_EVERY grid or among the MATCH_FRAMES largest
    faces so far (whose displaced member is dropped in turn, unless on the grid)."""
    index = len(images) - 1
    candidates = [index]
    if found:
        heapq.heappush(largest, (max(face.eye_distance for face in found), index))
        candidates = [heapq.heappop(largest)[1]] if len(largest) > MATCH_FRAMES else []
    for dropped in candidates:
        if dropped % KEEP_EVERY:
            images[dropped] = None
