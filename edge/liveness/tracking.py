"""Follow one face through a window of frames; the match must use the face that was shown live.

The first frame's largest face starts the track; each next frame continues with the face whose box
overlaps the last one most (IoU >= ``min_iou``). A frame with no such face is a gap; more than
``max_gap`` consecutive gaps, or a jump to a different face, ends the track (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.vision.detector import iou_one_to_many
from edge.vision.types import Face


@dataclass
class Track:
    times: list[float] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    broken: str | None = None  # reason the track ended early
    frames_seen: int = 0


def follow(detections: list[tuple[float, list[Face]]], *, min_iou: float = 0.3, max_gap: int = 5) -> Track:
    track = Track()
    gap = 0
    other_face_seen = False
    for index, (t, faces) in enumerate(detections):
        track.frames_seen += 1
        if not track.faces:
            if faces:
                chosen = max(faces, key=lambda f: f.area)
                track.times.append(t)
                track.faces.append(chosen)
                track.frame_indices.append(index)
            continue
        last = np.array(track.faces[-1].box)
        overlaps = [float(iou_one_to_many(last, np.array([f.box]))[0]) for f in faces]
        if overlaps and max(overlaps) >= min_iou:
            gap = 0
            track.times.append(t)
            track.faces.append(faces[int(np.argmax(overlaps))])
            track.frame_indices.append(index)
            continue
        gap += 1
        other_face_seen = other_face_seen or bool(faces)
        if gap > max_gap:
            track.broken = "face_changed" if other_face_seen else "face_lost"
            break
    return track
