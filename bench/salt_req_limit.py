#!/usr/bin/env python3
"""The direct limit on one master transport with Salt's own client: the clear loads salt-fcgi
sends for a lowstate list, sent by `salt.channel.client.ReqChannel` (the class salt-api's
clients use; it speaks the transport the master config names: zeromq, tcp or ws) with no
HTTP at all. Run with the Salt venv's Python:

    python bench/salt_req_limit.py --config MASTER --body BODY.json --concurrency N --seconds S

N processes (not threads: the master is measured, not the GIL), each with one ReqChannel
kept for all its requests (connected by one clear `ping` first), start together once all are
ready and send the list over and over for S seconds (at least once each). Prints one JSON
line like examples/master_limit: requests, rps (over the timed window, Python's start-up
excluded), p50_ms, p99_ms, errors. Clients: wheel (the chunk plus `cmd: wheel`, as
salt-fcgi sends it) and local_async (the publish load salt-fcgi sends).
"""

import argparse
import json
import multiprocessing
import os
import pwd
import statistics
import sys
import time


def load_for(chunk):
    """The clear load salt-fcgi sends for one chunk (src/salt/client/{wheel,job}.rs)."""
    creds = {k: chunk[k] for k in ("eauth", "username", "password", "token") if k in chunk}
    client = chunk.get("client")
    if client == "wheel":
        load = {"client": "wheel", "fun": chunk["fun"], "kwarg": {"arg": [], "kwarg": {}}}
        load.update(creds)
        load["cmd"] = "wheel"
        return load
    if client == "local_async":
        arg = chunk.get("arg", [])
        return {
            "cmd": "publish", "tgt": chunk["tgt"], "fun": chunk["fun"],
            "arg": arg if isinstance(arg, list) else [arg], "key": "",
            "tgt_type": chunk.get("tgt_type", "glob"), "ret": "", "jid": "",
            "kwargs": dict(creds, client="local_async"),
            "user": pwd.getpwuid(os.geteuid()).pw_name,
        }
    raise SystemExit(f"salt_req_limit: client {client!r} is not supported (wheel, local_async)")


def ok(reply):
    """A reply that is no error (the checks salt-fcgi's check_reply makes, in short)."""
    if not isinstance(reply, dict) or reply.get("error"):
        return False
    load = reply.get("load", reply)
    return not (isinstance(load, dict) and load.get("error"))


def worker(config, loads, seconds, timeout, ready, out):
    import salt.channel.client
    import salt.config

    opts = salt.config.client_config(config)
    channel = salt.channel.client.ReqChannel.factory(opts, crypt="clear")
    lat, errors = [], 0
    try:
        channel.send({"cmd": "ping"}, timeout=timeout)  # connected before the clock starts
        ready.wait(timeout=120)
        begun = time.monotonic()
        while not lat or time.monotonic() - begun < seconds:
            t0 = time.monotonic()
            for load in loads:
                try:
                    if not ok(channel.send(load, timeout=timeout)):
                        errors += 1
                except Exception:  # a failed request counts, the run goes on
                    errors += 1
            lat.append(time.monotonic() - t0)
        out.put({"lat": lat, "errors": errors, "window": time.monotonic() - begun})
    finally:
        channel.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    with open(a.body) as f:
        loads = [load_for(c) for c in json.load(f)]
    # Every process imports Salt and connects, then all start together.
    ready = multiprocessing.Barrier(a.concurrency)
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker,
                                     args=(a.config, loads, a.seconds, a.timeout, ready, out))
             for _ in range(a.concurrency)]
    for pr in procs:
        pr.start()
    results = [out.get(timeout=a.seconds + a.timeout + 120) for _ in procs]
    for pr in procs:
        pr.join()
    lat = sorted(x * 1000 for r in results for x in r["lat"])
    window = max((r["window"] for r in results), default=0) or 1e-9

    def pct(q):
        return lat[min(len(lat) - 1, int(len(lat) * q))] if lat else 0.0

    print(json.dumps({
        "requests": len(lat), "rps": round(len(lat) / window, 1),
        "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else 0.0,
        "errors": sum(r["errors"] for r in results),
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
