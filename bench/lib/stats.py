"""Statistics over measurements: percentiles of sorted samples, and one cell of a
results table from its repeated runs (medians, sums, maxima).
"""

import statistics


def percentile(sorted_values, p):
    """The `p`th percentile (0-100) of sorted samples: the value at index n·p/100 (the
    largest for p=100); 0.0 without samples."""
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))
    return sorted_values[i]


def failed_run(why, socket_errors, statuses):
    """A run in which no request completed: there is no rate or latency to report (not 0)."""
    return {"failed": why, "requests": 0, "rps": None, "errors": socket_errors,
            "socket_errors": socket_errors, "statuses": statuses}


def aggregate(runs):
    """Medians over repeats for rates/latencies; sums for errors; max for RSS. A cell with a
    run in which no request completed is failed as a whole (a median of the other runs
    would hide it)."""
    runs = [r for r in runs if r is not None]
    if not runs:
        return None
    statuses = {}
    for r in runs:
        for k, v in r["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    failed = [r for r in runs if r.get("failed")]
    if failed:
        return {"failed": f"{failed[0]['failed']} ({len(failed)} of {len(runs)} runs)",
                "rps": None, "errors": sum(r["errors"] for r in runs),
                "socket_errors": sum(r["socket_errors"] for r in runs),
                "requests": sum(r["requests"] for r in runs), "statuses": statuses,
                "repeats": len(runs)}
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "mean_ms": statistics.median(r.get("mean_ms") or 0.0 for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "statuses": statuses,
        "rss_kb": max(r["rss_kb"] for r in runs),
        "rss_single_kb": max(r["rss_single_kb"] for r in runs),
        "frontend_rss_kb": max(r["frontend_rss_kb"] for r in runs),
        "repeats": len(runs),
        "rps_runs": [round(r["rps"], 1) for r in runs],
    }
