"""Snapmanager: scheduled, rotating, restorable snapshots of instances."""
