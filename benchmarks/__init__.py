"""Speed and memory measurements of Snapmanager.

Each benchmark is a command (see README.md) that prints its numbers
next to a baseline measured in the same run, as ratios. Nothing here
is a test: tests never time anything.
"""
