"""Three tried and rejected structure probes for issue 15 item 1, kept so the numbers can be re-run.

Both compare the frame where a turn starts with frames near its peak, on the head turns of the twelve
real clips (shared/data/video/live, found as in bench/liveness_challenge_live.py) and on 16 photos
answering a challenge (bent 0.3 / 0.5 / 0.8 widths and flat, as in bench/liveness_challenge_attacks.py):

  curvature   the face, normalised to 40 px between the eyes, is covered by a 4 px grid of points that
              pyramidal Lucas-Kanade tracks (initial guess: the homography of the eyes and mouth corners;
              forward-backward error < 0.3 px). A homography is fitted to all tracks; the residual,
              projected on its main direction, is the parallax, proportional to depth off the best plane.
              A quadratic surface fitted to it gives two principal curvatures; their ratio is ~0 for any
              sheet bent around one axis (developable) and positive for a head (curved both ways).
  plane       the same tracks' median distance from that homography: a flat sheet's texture moves as
              one plane, so it should stay at the tracking noise, and a head's should not.
  nasion/tip  Lucas-Kanade on 3x3 point clusters at the bridge of the nose and at the tip; each one's
              residual from the eyes-and-mouth homography, in eye distances. On a head the tip moves off
              the plane ~2-3x more than the bridge; on a sheet bent around a vertical axis both move alike.

None separated heads from sheets on this material (docs/LIVENESS.md): the clips' talking faces and
landmark jitter put the noise at the size of the signal for 8-15 degree turns.
Run: .venv/bin/python bench/liveness_structure_probe.py  (writes bench/results/liveness_structure_probe.json)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save

from edge.assembly import build_face_stage
from edge.camera.sources import ReplaySource
from edge.config import load_config
from edge.imageio import load_image
from edge.liveness import attacks
from edge.liveness.presentations import WINDOW_FRAMES, answering_turn, turn_onsets
from edge.liveness.temporal import PLANE_POINTS, Challenge, yaw_series
from edge.liveness.tracking import Track, follow
from edge.vision.types import Face

EYE, SIZE = 40.0, 128
CENTRE = np.array([SIZE / 2, 0.375 * SIZE + 0.5 * EYE])


def _grey(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), matrix, (SIZE, SIZE), flags=cv2.INTER_AREA)


def _normalising(face: Face) -> np.ndarray:
    right, left = face.landmarks[0].astype(np.float64), face.landmarks[1].astype(np.float64)
    v = left - right
    scale, angle = EYE / np.linalg.norm(v), np.arctan2(v[1], v[0])
    m = np.array([[scale * np.cos(-angle), -scale * np.sin(-angle), 0.0],
                  [scale * np.sin(-angle), scale * np.cos(-angle), 0.0]])
    m[:, 2] = np.array([SIZE / 2, 0.375 * SIZE]) - m[:, :2] @ ((right + left) / 2)
    return m


def _tracks(ref: np.ndarray, cur: np.ndarray, f0: Face, f1: Face) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The face grid's points in the reference frame, where they were tracked to, and the tracked points'
    residual from the homography that fits them all (normalised pixels), or None with under 40 tracks."""
    m = _normalising(f0)
    g0, g1 = _grey(ref, m), _grey(cur, m)
    lm0 = (f0.landmarks @ m[:, :2].T + m[:, 2]).astype(np.float32)
    lm1 = (f1.landmarks @ m[:, :2].T + m[:, 2]).astype(np.float32)
    ys, xs = np.mgrid[8:SIZE - 8:4, 8:SIZE - 8:4]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    pts = pts[(((pts - CENTRE) / [1.15 * EYE, 1.5 * EYE]) ** 2).sum(1) < 1]
    init = cv2.perspectiveTransform(pts[None], cv2.getPerspectiveTransform(lm0[PLANE_POINTS], lm1[PLANE_POINTS]))[0]
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(g0, g1, pts, init.copy(), winSize=(11, 11), maxLevel=2,
                                          flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(g1, g0, nxt, pts.copy(), winSize=(11, 11), maxLevel=2,
                                            flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(back - pts, axis=1) < 0.3)
    if ok.sum() < 40:
        return None
    p, q = pts[ok], nxt[ok]
    h, _ = cv2.findHomography(p, q, 0)
    return p, q, q - cv2.perspectiveTransform(p[None], h)[0]


def plane_residual(ref: np.ndarray, cur: np.ndarray, f0: Face, f1: Face) -> float | None:
    """Median distance of the tracks from the one homography that fits them all (pixels at 40 px between
    the eyes): a flat sheet's texture moves as one plane, a head's does not."""
    tracks = _tracks(ref, cur, f0, f1)
    return None if tracks is None else float(np.median(np.linalg.norm(tracks[2], axis=1)))


def curvature_ratio(ref: np.ndarray, cur: np.ndarray, f0: Face, f1: Face) -> float | None:
    tracks = _tracks(ref, cur, f0, f1)
    if tracks is None:
        return None
    p, _, residual = tracks
    parallax = residual @ np.linalg.svd(residual, full_matrices=False)[2][0]
    x, y = (p[:, 0] - CENTRE[0]) / EYE, (p[:, 1] - CENTRE[1]) / EYE
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], 1)
    c = np.linalg.lstsq(design, parallax, rcond=None)[0]
    w = np.linalg.eigvalsh(np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]]))
    w = w[np.argsort(-np.abs(w))]
    return float(w[1] / w[0]) if abs(w[0]) > 1e-9 else None


def bridge_over_tip(frames: list[np.ndarray], track: Track, i0: int, later: list[int]) -> float | None:
    f0 = track.faces[i0]
    eye = f0.eye_distance
    lm0 = f0.landmarks.astype(np.float32)
    ex = (lm0[1] - lm0[0]) / eye
    ey = np.array([-ex[1], ex[0]], np.float32)
    offsets = np.array([[dx, dy] for dx in (-0.08, 0, 0.08) for dy in (-0.08, 0, 0.08)], np.float32) * eye
    pts = np.vstack([(lm0[0] + lm0[1]) / 2 - 0.05 * eye * ey + offsets, lm0[2] + offsets]).astype(np.float32)
    scale = EYE / eye
    g0 = cv2.resize(cv2.cvtColor(frames[i0], cv2.COLOR_BGR2GRAY), None, fx=scale, fy=scale)
    bridge, tip = [], []
    for j in later:
        lm1 = track.faces[j].landmarks.astype(np.float32)
        g1 = cv2.resize(cv2.cvtColor(frames[j], cv2.COLOR_BGR2GRAY), None, fx=scale, fy=scale)
        planar = cv2.perspectiveTransform(pts[None], cv2.getPerspectiveTransform(lm0[PLANE_POINTS],
                                                                                lm1[PLANE_POINTS]))[0]
        nxt, _, _ = cv2.calcOpticalFlowPyrLK(g0, g1, pts * scale, planar * scale, winSize=(15, 15), maxLevel=2,
                                             flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        off = (nxt / scale - planar) / eye
        bridge.append(np.median(off[:9], 0))
        tip.append(np.median(off[9:], 0))
    b, t = np.median(bridge, 0), np.median(tip, 0)
    size = float(np.linalg.norm(t))
    return float(b @ (t / size)) / size if size > 1e-3 else None


def turns(frames: list[np.ndarray], track: Track, onsets: list[tuple[float, float]]) -> list[dict]:
    yaw, t = yaw_series(track.faces), np.array(track.times)
    out = []
    for onset, _ in onsets:
        i0 = int(np.searchsorted(t, onset))
        ahead = np.flatnonzero((t > onset) & (t <= onset + 1.5))
        if ahead.size == 0:
            continue
        peak = ahead[np.argmax(np.abs(yaw[ahead] - yaw[i0]))]
        near = [j for j in ahead if abs(yaw[j] - yaw[i0]) >= 0.6 * abs(yaw[peak] - yaw[i0])]
        images = [frames[k] for k in track.frame_indices]
        out.append({"turn_deg": round(float(abs(yaw[peak] - yaw[i0])), 1),
                    "curvature_ratio": curvature_ratio(images[i0], images[peak], track.faces[i0], track.faces[peak]),
                    "plane_residual_px": plane_residual(images[i0], images[peak], track.faces[i0], track.faces[peak]),
                    "bridge_over_tip": bridge_over_tip(images, track, i0, near)})
    return out


def main() -> None:
    detector = build_face_stage(load_config()).detector
    results: dict[str, list[dict]] = {"live": [], "bent": [], "flat": []}
    for clip in sorted((DATA / "video" / "live").glob("*.mp4")):
        with ReplaySource(clip) as source:
            frames = [f for _, f in source.frames()]
        track = follow([(i / 30.0, detector.detect(f)) for i, f in enumerate(frames)])
        if len(track.faces) >= 30:
            results["live"] += turns(frames, track, turn_onsets(track.times, yaw_series(track.faces)))
    photos = [load_image(p) for p in sorted((DATA / "faces" / "people").glob("*/*.jp*g"))]
    heads = attacks.trimmed_heads(photos, detector)
    rng = np.random.default_rng(1)
    for i in range(16):
        challenge = Challenge.from_nonce(rng.bytes(16))
        radius = (0.3, 0.5, 0.8, 1e4)[i % 4]
        shown = attacks.bent_photo_attack(heads[i % len(heads)], rng, frames=WINDOW_FRAMES, radius_widths=radius,
                                          yaw_deg_at=answering_turn(challenge, rng))
        frames = [f for _, f in shown]
        track = follow([(t, detector.detect(f)) for t, f in shown])
        results["flat" if radius > 100 else "bent"] += turns(frames, track, [(challenge.prompt_at_s + 0.2, 1.0)])
    summary: dict[str, dict] = {}
    for kind, rows in results.items():
        summary[kind] = {}
        for key in ("curvature_ratio", "bridge_over_tip", "plane_residual_px"):
            values = np.array([r[key] for r in rows if r[key] is not None])
            summary[kind][key] = ({"n": int(values.size), "p10": round(float(np.percentile(values, 10)), 3),
                                   "median": round(float(np.median(values)), 3),
                                   "p90": round(float(np.percentile(values, 90)), 3)} if values.size else None)
        print(kind, summary[kind], flush=True)
    print(save("liveness_structure_probe", {"summary": summary, "rows": results}))


if __name__ == "__main__":
    main()
