"""Files that must never be half-written or unsafe to read: atomic writes and weights-only checkpoints."""
