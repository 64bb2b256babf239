"""snapmanager-conductor: schedule clock, retention, results, restores."""
