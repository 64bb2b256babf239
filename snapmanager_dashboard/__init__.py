"""Snapmanager's Horizon plugin (Project > Compute > Snapshots)."""
