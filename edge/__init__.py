"""edge: biometric verification and card service for ward escort gates and vaccination stations."""

__version__ = "0.1.0"
