"""Face stage: detection (YuNet), quality gates, 5-point alignment, embedding (SFace), cosine matching."""
