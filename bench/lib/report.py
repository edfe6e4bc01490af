"""What a bench report says besides its measurements, and where it goes: the machine,
the load average, the commit measured, number formats for Markdown tables, results files
and the generated sections of docs/benchmarks.md.
"""

import json
import os
import platform
import subprocess

from . import ROOT

BENCHMARKS_MD = os.path.join(ROOT, "docs", "benchmarks.md")


def load():
    """The load averages (1, 5, 15 min) as "0.12 0.34 0.56"."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info():
    """CPUs, CPU model, memory, kernel and the load average now."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except OSError:
        mem_kb = 0
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gb": mem_kb / 1024 / 1024,
            "kernel": platform.release(), "load_start": load()}


def git_commit():
    """The commit measured: `git describe --always --dirty`."""
    return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()


def first_line(argv):
    """The first line a command prints (stdout, then stderr), or "?"."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except Exception:
        return "?"


# -- number formats -----------------------------------------------------------------------


def fmt_rps(x):
    """Requests per second; "**failed**" for a failed run or cell (a dict)."""
    if x is None:
        return "—"
    if isinstance(x, dict):  # a run or cell: "failed" when no request completed
        return "**failed**" if x.get("failed") else fmt_rps(x["rps"])
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.0f}"
    return f"{x:.1f}"


def fmt_ms(x):
    """Milliseconds, with fewer decimals the larger they are."""
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(a, b):
    """a / b as "1.23×"; "—" when either is missing."""
    if a is None or b is None or not b:
        return "—"
    r = a / b
    if r >= 100:
        return f"{r:,.0f}×"
    if r >= 10:
        return f"{r:.0f}×"
    return f"{r:.2f}×"


def fmt_mb(kb):
    """kB as MB with one decimal; "—" for none."""
    return f"{kb / 1024:.1f}" if kb else "—"


def fmt_statuses(st):
    """{status: count} as "200×12 503×1"."""
    if not st:
        return ""
    return " ".join(f"{k}×{v}" for k, v in sorted(st.items()))


# -- files --------------------------------------------------------------------------------


def write_results(out_dir, results, report):
    """results.json (`results`, indented) and report.md (`report`) in `out_dir` (created)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(report + "\n")


def replace_doc_section(begin, end, text, path=BENCHMARKS_MD):
    """Replaces what lies between the markers `begin` and `end` of `path` (by default
    docs/benchmarks.md) with `text`, the markers kept. False (nothing written) when the file
    lacks a marker."""
    with open(path) as f:
        doc = f.read()
    if begin not in doc or end not in doc:
        return False
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(head + begin + text + end + tail)
    return True
