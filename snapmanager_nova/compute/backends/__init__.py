"""Storage backends of the compute agent: one per kind of Nova disk."""
