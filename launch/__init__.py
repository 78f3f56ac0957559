"""Sweep expansion and launchers: `python launch/sweep.py --help`."""
