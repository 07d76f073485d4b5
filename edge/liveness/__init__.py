"""Liveness: per-frame deny cues (Numba), temporal confirm cues, a nonce-bound challenge, optional PAD model."""
