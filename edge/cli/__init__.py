"""The ``edge`` command. Machine-readable modes print one JSON object per line on stdout, nothing else."""
