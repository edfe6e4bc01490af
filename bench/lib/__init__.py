"""Code the bench scripts share (bench/run, bench/fleet, bench/streams, bench/attacks,
bench/audit): each script is a driver that imports from here.

    procs     processes started and stopped, /proc sampling (RSS, CPU, open files), ports
    master    a salt-master from scripts/salt-env, and bench/minion_sim.py
    servers   salt-fcgi, nginx, Apache, gunicorn and salt-api with the shipped configs
    stats     percentiles, and a cell's medians over repeats
    report    the machine, the commit, number formats, results files, docs/benchmarks.md

Standard library only. A script finds this package with
`sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))`.
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_log(name, clock=False):
    """A `log(msg)` that prints `[name] msg` (with clock=True `[name HH:MM:SS] msg`) to
    stderr."""

    def log(msg):
        stamp = f" {time.strftime('%H:%M:%S')}" if clock else ""
        print(f"[{name}{stamp}] {msg}", file=sys.stderr, flush=True)

    return log
