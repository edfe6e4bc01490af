"""The report of bench/run: its Markdown (Results, Targets, the per-scenario tables, CGI
cost, sizes and chunks, master transports, probes) from its results.json data; the verdict
on each performance target; the versions of the tools it used.
"""

import statistics

from .report import first_line, fmt_mb, fmt_ms, fmt_ratio, fmt_rps, fmt_statuses

SERVERS = ["fastcgi", "cgi", "http", "wsgi", "cherrypy", "limit"]
SERVER_LABEL = {
    "fastcgi": "salt-fcgi FastCGI (nginx)",
    "cgi": "salt-fcgi CGI (Apache mod_cgid)",
    "http": "salt-fcgi HTTP",
    "wsgi": "rest_wsgi (gunicorn)",
    "cherrypy": "rest_cherrypy (salt-api)",
    "limit": "limit (ZeroMQ, no HTTP)",
    "saltreq": "Salt's ReqChannel (Python, no HTTP)",
}


def result_cell(r):
    """One server's cell in a results table: "rps (p50 ms)", its errors, or why it failed."""
    if r is None:
        return "—"
    if r.get("failed"):
        return f"**failed**: {r['failed']}"
    errors = f", {r['errors']} err" if r["errors"] else ""
    return f"{fmt_rps(r['rps'])} ({fmt_ms(r['p50_ms'])}){errors}"


def render(res):
    """report.md of a run (also the generated section of docs/benchmarks.md)."""
    a = res["args"]
    m = res["machine"]
    out = []
    w = out.append
    label = "QUICK development run (not final numbers)" if a["quick"] else "full run"
    w(f"### Results: {label}\n")
    w(f"- Date: {res['started']} → {res['finished']} ({res['elapsed_s'] / 60:.1f} min)")
    w(f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gb']:.0f} GB RAM, "
      f"Linux {m['kernel']}; load average at start {m['load_start']}, at end {m['load_end']}")
    w(f"- Command: `{res['command']}` (commit {res['commit']})")
    w(f"- Salt {res['salt_version']} master + 3 minions on 127.0.0.1; "
      f"{a['seconds']:g} s per run ({max(a['seconds'], a['slow_seconds']):g} s for the ~1 s "
      f"requests, × c/8 above 8 connections; job scenarios capped by count), "
      f"{a['repeats']} repeat(s), "
      f"median shown; concurrency {', '.join(map(str, a['concurrency']))}")
    w(f"- Tools: {res['versions']}")
    h = res.get("minion_health", {})
    w(f"- Minion health during the run: {h.get('crashed_job_processes', '?')} crashed job "
      f"processes, {h.get('read_errors', '?')} event-bus read errors logged"
      + (" — **the minions were overloaded: job-scenario numbers are suspect**"
         if h.get("read_errors") or h.get("crashed_job_processes") else ""))
    w("")

    main = res["main"]
    conc = a["concurrency"]

    def get(server, scen, c):
        return main.get(scen, {}).get(str(c), {}).get(server)

    # Targets
    w("#### Targets\n")
    w("| target | measured | met? |")
    w("|---|---|---|")
    for t in res["targets"]:
        w(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    w("")

    # Per-scenario tables
    w("#### Requests/s, latency, errors, memory per server × scenario\n")
    w("`×wsgi`, `×cherrypy`, `×limit`: this row's requests/s divided by that server's at the "
      "same concurrency. RSS: peak summed RSS of the serving process tree sampled from /proc "
      "every 100 ms (salt-fcgi process only for FastCGI/HTTP; gunicorn master + workers; "
      "salt-api and its children), for CGI the max RSS of one salt-fcgi CGI process "
      "(getrusage of a direct exec with the same body), for the limit the master_limit "
      "process. Web servers (nginx, Apache) are not included (see the last column). Errors: "
      "socket errors and timeouts, plus non-2xx answers where 2xx is expected; statuses: "
      "all answers of all repeats.\n")
    for scen in res["scenarios"]:
        name = scen["name"]
        w(f"##### {scen['title']}\n")
        w("| server | c | req/s | p50 ms | p99 ms | errors | statuses | RSS MB | ×wsgi | ×cherrypy | ×limit | web server RSS MB |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for server in SERVERS:
            if server not in a["servers"]:
                continue
            for c in conc:
                r = get(server, name, c)
                if r is None:
                    if server == "limit" and scen["kind"] == "none":
                        if c == conc[0]:
                            w(f"| {SERVER_LABEL[server]} | all | n/a: no master request | | | | | | | | | |")
                    continue
                if r.get("failed"):
                    w(f"| {SERVER_LABEL[server]} | {c} | **failed**: {r['failed']} | | | "
                      f"{r['errors']} | {fmt_statuses(r['statuses'])} | | | | | |")
                    continue
                rss = r["rss_kb"]
                if server == "cgi":
                    rss = res["cgi_rss"].get(name, {}).get("max_rss_kb", 0)
                ratios = ["", "", ""]
                if server in ("fastcgi", "cgi", "http"):
                    ratios = [fmt_ratio(r["rps"], (get(s, name, c) or {}).get("rps"))
                              for s in ("wsgi", "cherrypy", "limit")]
                w(f"| {SERVER_LABEL[server]} | {c} | {fmt_rps(r['rps'])} | {fmt_ms(r['p50_ms'])} "
                  f"| {fmt_ms(r['p99_ms'])} | {r['errors']} | {fmt_statuses(r['statuses'])} "
                  f"| {fmt_mb(rss)} | {ratios[0]} | {ratios[1]} | {ratios[2]} "
                  f"| {fmt_mb(r['frontend_rss_kb'])} |")
        w("")

    # CGI cost
    w("#### CGI cost\n")
    w("Exec to response, outside any web server (a loop `posix_spawn`ing the binary as a CGI "
      "program with the request on stdin and reading its whole answer; the master is not "
      "contacted):\n")
    w("| program | runs | p50 ms | p99 ms | mean ms | statuses |")
    w("|---|---|---|---|---|---|")
    for k, v in res["cold_start"].items():
        w(f"| {k} | {v['n']} | {fmt_ms(v['p50_ms'])} | {fmt_ms(v['p99_ms'])} "
          f"| {fmt_ms(v['mean_ms'])} | {fmt_statuses(v['statuses'])} |")
    w("")
    if res.get("cgi_paths"):
        w("`[]` at concurrency 1 through each path, over one keep-alive connection and over a "
          "new connection per request (`Connection: close`, what curl and salt-pepper do). "
          "After every CGI request mod_cgid sends the finished script SIGTERM \"in case it "
          "isn't dead yet\" and polls for its exit, sleeping 10 ms first "
          "(`cleanup_nonchild_process`/`dead_yet` in mod_cgid.c), before the connection can "
          "carry the next request: only keep-alive clients wait for it. The minimal C CGI "
          "program is the floor of any CGI program under this Apache:\n")
        w("| path | keep-alive: mean ms | p50 ms | req/s | new connection: mean ms | p50 ms | req/s |")
        w("|---|---|---|---|---|---|---|")
        for row in res["cgi_paths"]:
            cells = []
            for cell in (row["keepalive"], row["close"]):
                if cell.get("failed"):
                    cells.append(f"**failed**: {cell['failed']} | | ")
                else:
                    cells.append(f"{fmt_ms(cell['mean_ms'])} | {fmt_ms(cell['p50_ms'])} "
                                 f"| {fmt_rps(cell['rps'])}")
            w(f"| {row['label']} | {cells[0]} | {cells[1]} |")
        w("")
    c1 = conc[0]
    w(f"Apache mod_cgid vs nginx → FastCGI per scenario, keep-alive, p50 latency at "
      f"concurrency {c1} (from the main table):\n")
    w("| scenario | FastCGI p50 ms | CGI p50 ms | CGI added ms | FastCGI req/s | CGI req/s |")
    w("|---|---|---|---|---|---|")
    for scen in res["scenarios"]:
        f, g = get("fastcgi", scen["name"], c1), get("cgi", scen["name"], c1)
        if f and g and not f.get("failed") and not g.get("failed"):
            w(f"| {scen['title']} | {fmt_ms(f['p50_ms'])} | {fmt_ms(g['p50_ms'])} "
              f"| {g['p50_ms'] - f['p50_ms']:+.2f} | {fmt_rps(f['rps'])} | {fmt_rps(g['rps'])} |")
    w("")
    w("Max RSS of one salt-fcgi CGI process per scenario (getrusage):\n")
    w("| scenario | max RSS MB | status |")
    w("|---|---|---|")
    for scen in res["scenarios"]:
        v = res["cgi_rss"].get(scen["name"])
        if v:
            w(f"| {scen['title']} | {fmt_mb(v['max_rss_kb'])} | {v['status']} |")
    w("")

    for key, title, intro in (
        ("sizes", "Cost vs response size",
         "`cmd.run` printing N bytes on one minion (the minion's shell and the master's job "
         "handling are included in every row; the limit row isolates what HTTP adds)"),
        ("chunks", "Cost vs chunks per request",
         "N chunks of `wheel key.list_all` in one request, run one after the other"),
    ):
        block = res.get(key)
        if not block:
            continue
        w(f"#### {title} (concurrency {block['concurrency']})\n")
        w(intro + ":\n")
        servers = [s for s in block["servers"]]
        w("| case | " + " | ".join(f"{SERVER_LABEL[s]} req/s (p50 ms)" for s in servers)
          + " | FastCGI ×limit | RSS MB (FastCGI) |")
        w("|---|" + "---|" * len(servers) + "---|---|")
        for scen in block["scenarios"]:
            row = block["results"][scen["name"]]
            cells = [result_cell(row.get(s)) for s in servers]
            f, l = row.get("fastcgi"), row.get("limit")
            w(f"| {scen['title']} | " + " | ".join(cells)
              + f" | {fmt_ratio(f and f['rps'], l and l['rps'])} "
              + f"| {fmt_mb(f.get('rss_kb')) if f else '—'} |")
        w("")

    if res.get("transports"):
        w(render_transports(res["transports"]))
    w("#### What each server answered (one probe request per scenario)\n")
    w("| scenario | " + " | ".join(SERVER_LABEL[s] for s in a["servers"] if s != "limit") + " |")
    w("|---|" + "---|" * len([s for s in a["servers"] if s != "limit"]))
    for scen in res["scenarios"]:
        cells = []
        for s in a["servers"]:
            if s == "limit":
                continue
            p = res["probes"].get(s, {}).get(scen["name"])
            cells.append("—" if p is None else
                         f"{p['status']} `{' '.join(p['body'].split())[:60]}`".replace("|", "\\|"))
        w(f"| {scen['title']} | " + " | ".join(cells) + " |")
    w("")
    return "\n".join(out)


def evaluate_targets(res):
    """Each performance target with what was measured and whether it was met."""
    main = res["main"]
    conc = res["args"]["concurrency"]

    def get(server, scen, c):
        return main.get(scen, {}).get(str(c), {}).get(server)

    targets = []

    def ratio_list(scens, num, den):
        vals = []
        for s in scens:
            for c in conc:
                a, b = get(num, s, c), get(den, s, c)
                if a and b and a["rps"] and b["rps"]:
                    vals.append((a["rps"] / b["rps"], s, c))
        return vals

    vals = ratio_list(["empty", "406"], "fastcgi", "wsgi")
    if vals:
        worst = min(vals)
        targets.append({"target": "non-master paths: FastCGI ≥ 100× rest_wsgi req/s",
                        "measured": f"worst {worst[0]:,.0f}× ({worst[1]}, c={worst[2]}); best "
                                    f"{max(vals)[0]:,.0f}×",
                        "met": worst[0] >= 100})
    master_scens = [s["name"] for s in res["scenarios"] if s["kind"] == "master"]
    vals = ratio_list(master_scens, "fastcgi", "limit")
    if vals:
        worst = min(vals)
        below = [f"{s} c={c}: {r:.2f}×" for r, s, c in sorted(vals) if r < 0.9]
        targets.append({"target": "master paths: FastCGI ≥ 0.9× the direct-ZeroMQ limit",
                        "measured": f"median over {len(vals)} cells "
                                    f"{statistics.median(v[0] for v in vals):.2f}×; "
                                    f"worst {worst[0]:.2f}× ({worst[1]}, c={worst[2]})"
                                    + (f"; below 0.9: {', '.join(below)}" if below else ""),
                        "met": worst[0] >= 0.9})
    for ref in ("wsgi", "cherrypy"):
        # The 401 is left out of the verdict (shown): the master pads every failed eauth to
        # ~1 s, so every server answers it at the master's pace.
        vals = ratio_list([s for s in master_scens if s != "401"], "fastcgi", ref)
        v401 = ratio_list(["401"], "fastcgi", ref)
        if vals:
            worst = min(vals)
            targets.append({"target": f"master paths: FastCGI ahead of {SERVER_LABEL[ref]}",
                            "measured": f"worst {worst[0]:.2f}× ({worst[1]}, c={worst[2]})"
                                        + (f"; 401 (every server waits for the master's ~1 s "
                                           f"eauth padding): {min(v401)[0]:.2f}×–{max(v401)[0]:.2f}×"
                                           if v401 else ""),
                            "met": worst[0] > 1.0})
    paths = {row["label"]: row for row in res.get("cgi_paths", [])}
    f = paths.get("salt-fcgi FastCGI (nginx)")
    g = paths.get("salt-fcgi CGI (Apache mod_cgid)")
    floor = paths.get("minimal C CGI program (Apache mod_cgid)")
    if f and g:
        for mode, label in (("close", "a new connection per request"),
                            ("keepalive", "keep-alive")):
            if any(x[mode].get("failed") for x in (f, g) + ((floor,) if floor else ())):
                targets.append({"target": f"CGI ≤ 3 ms added per request over FastCGI (`[]`, "
                                          f"c=1, {label})",
                                "measured": "not measured: a run failed", "met": False})
                continue
            added = g[mode]["mean_ms"] - f[mode]["mean_ms"]
            note = f" (p50 {g[mode]['p50_ms'] - f[mode]['p50_ms']:+.2f} ms)"
            if floor:
                note += (f"; a minimal C CGI program: "
                         f"{floor[mode]['mean_ms'] - f[mode]['mean_ms']:+.2f} ms (Apache's share)")
            targets.append({"target": f"CGI ≤ 3 ms added per request over FastCGI (`[]`, c=1, "
                                      f"mean latency, {label})",
                            "measured": f"{added:+.2f} ms{note}",
                            "met": added <= 3.0})
    rss = [r["rss_kb"] for sc in main.values() for cc in sc.values()
           for srv, r in cc.items() if srv == "fastcgi" and r and not r.get("failed")]
    if rss:
        peak = max(rss)
        targets.append({"target": "FastCGI worker RSS ≤ 15 MB",
                        "measured": f"peak {peak / 1024:.1f} MB over all scenarios",
                        "met": peak <= 15 * 1024})
    return targets


def render_transports(block):
    """The master transports table."""
    out = []
    w = out.append
    w(f"#### Master transports (Salt {block['salt_version']})\n")
    w("One master + 3 minions per transport; salt-fcgi FastCGI behind the shipped nginx site, "
      "the same requests from examples/master_limit (salt-fcgi's library, no HTTP), and the "
      "same clear loads through Salt's own `ReqChannel` for that transport "
      "(bench/salt_req_limit.py, Python, one channel per process, no HTTP):\n")
    label = dict(SERVER_LABEL, limit="master_limit (no HTTP)")
    w("| transport | case | c | " + " | ".join(f"{label[s]} req/s (p50 ms)"
                                            for s in block["servers"])
      + " | FastCGI ×ReqChannel | FastCGI ×limit |")
    w("|---|---|---|" + "---|" * len(block["servers"]) + "---|---|")
    titles = {s["name"]: s["title"] for s in block.get("scenarios", [])}
    for transport in block["transports"]:
        for name, per_c in block["results"].get(transport, {}).items():
            for c, row in per_c.items():
                cells = [result_cell(row.get(srv)) for srv in block["servers"]]
                f, q, l = row.get("fastcgi"), row.get("saltreq"), row.get("limit")
                w(f"| {transport} | {titles.get(name, name)} | {c} | " + " | ".join(cells)
                  + f" | {fmt_ratio(f and f['rps'], q and q['rps'])}"
                  + f" | {fmt_ratio(f and f['rps'], l and l['rps'])} |")
    w("")
    return "\n".join(out)


def tool_versions(venv):
    """The versions of the load generator, the web servers, the Python servers and rustc."""
    return ", ".join([
        first_line(["wrk", "--version"]).split(" Copyright")[0],
        first_line(["nginx", "-v"]).replace("nginx version: ", ""),
        first_line(["apache2", "-v"]).replace("Server version: ", ""),
        "gunicorn " + first_line([f"{venv}/bin/gunicorn", "--version"]).split()[-1].strip(")"),
        "CherryPy " + first_line([f"{venv}/bin/python", "-c",
                                  "import cherrypy; print(cherrypy.__version__)"]),
        first_line(["rustc", "--version"]),
    ])
