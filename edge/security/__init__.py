"""Device identity, verification tokens, the trusted-clock check, and template encryption at rest."""
