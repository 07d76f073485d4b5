"""Store-and-forward of verification tokens to the central registry."""
