#!/usr/bin/env python3
"""A fleet of simulated minions that are real to the salt-master (test tooling only).

    minion_sim.py --master-config DIR/master --count N [--prefix fleet-] [--delay 0:2]
                  [--silent 0.01] [--size 0] [--senders 16] [--reply-timeout 60]
                  [--ready FILE] [--stats FILE]
    minion_sim.py --master-config DIR/master --remove [--prefix fleet-]

Run it with the Python of Salt's venv: it uses Salt's own crypto and serialisation.

What the master sees is what it sees of real minions:
  * N ids (`<prefix>00000` …) whose public keys are accepted in its pki dir (one key pair
    serves every id: the files are written straight into `pki_dir/minions`);
  * each id signs in with `_auth` on `ret_port` (protocol version 3, so the master hands
    out a per-id session key; the keys are cached beside the key pair, valid as long as
    the master's `publish_session`);
  * one subscriber on the publish port decrypts every publish with the master's AES key
    and, for each targeted id, sends the `_return` a minion sends, encrypted with that
    id's session key and carrying its token, so the master stores the return in its job
    cache and fires `salt/job/<jid>/ret/<id>` itself.

Returns come after a delay drawn uniformly from --delay (seconds, `lo:hi`); a --silent
fraction of ids (every k-th id, deterministic) never answers anything, so LocalClient's
`saltutil.find_job` round and `gather_job_timeout` are exercised; the others answer
`saltutil.find_job` as a minion does (the job's data while it still "runs", `{}` after).
--size gives returns of that many bytes (a string) instead of `True`.

--ready FILE is written once every id signed in and the subscriber is connected:
{"ids": [...], "silent": [...]}. --stats FILE is rewritten after each return burst:
{jid: {"fun", "tgt_type", "returns", "last_return": unix time}}. SIGTERM/SIGINT stop it.

Returns and find_job answers leave through separate connections (--senders, and a quarter
as many for find_job), so neither waits behind the other; a reply the master does not
send within --reply-timeout is sent again on a new connection.
"""

import argparse
import asyncio
import fnmatch
import json
import os
import random
import re
import signal
import sys
import time
import uuid

import salt.config
import salt.crypt
import salt.payload
import zmq
import zmq.asyncio

ENC = "OAEP-SHA1"
SIG = "PKCS1v15-SHA1"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--master-config", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--prefix", default="fleet-")
    p.add_argument("--delay", default="0:2", help="uniform return delay, lo:hi seconds")
    p.add_argument("--silent", type=float, default=0.0, help="fraction that never answers")
    p.add_argument("--size", type=int, default=0, help="return size in bytes (0: True)")
    p.add_argument("--senders", type=int, default=16,
                   help="parallel return connections (a quarter more answer find_job)")
    p.add_argument("--reply-timeout", type=float, default=60.0,
                   help="seconds to wait for the master's reply before sending again")
    p.add_argument("--ready")
    p.add_argument("--stats")
    p.add_argument("--remove", action="store_true", help="remove the prefix's keys, exit")
    return p.parse_args()


def silent_ids(ids, fraction):
    """Every k-th id (deterministic), so a test knows which ones will stay silent."""
    if fraction <= 0:
        return set()
    return {i for n, i in enumerate(ids) if int((n + 1) * fraction) > int(n * fraction)}


class Fleet:
    """The key pair, the accepted keys and the per-id session keys."""

    def __init__(self, opts, args):
        self.opts = opts
        self.args = args
        self.state = os.path.join(opts["cachedir"], "minion-sim")
        os.makedirs(self.state, exist_ok=True)
        self.ids = [f"{args.prefix}{n:05d}" for n in range(args.count)]
        self.accepted = os.path.join(opts["pki_dir"], "minions")
        self.master_uri = f"tcp://{opts['interface']}:{opts['ret_port']}"
        self.pub_uri = f"tcp://{opts['interface']}:{opts['publish_port']}"

    def keys(self):
        pem = os.path.join(self.state, "sim.pem")
        if not os.path.exists(pem):
            salt.crypt.gen_keys(self.state, "sim", 2048)
        with open(os.path.join(self.state, "sim.pub"), encoding="utf-8") as f:
            self.pub = f.read()
        self.private = salt.crypt.PrivateKey(pem)
        # The token every request carries: "salt" encrypted with the private key.
        self.tok = self.private.encrypt(b"salt")

    def accept(self):
        """Writes each id's key into the master's accepted keys (as `salt-key -A` would)."""
        for i in self.ids:
            path = os.path.join(self.accepted, i)
            if not os.path.exists(path):
                with open(path, "w", encoding="utf-8") as f:
                    f.write(self.pub)

    def remove(self):
        for name in os.listdir(self.accepted):
            if name.startswith(self.args.prefix):
                os.unlink(os.path.join(self.accepted, name))

    async def sign_in_all(self, ctx):
        """`_auth` for every id without a cached session key; returns the AES key."""
        cache_path = os.path.join(self.state, "sessions.json")
        try:
            with open(cache_path, encoding="utf-8") as f:
                cache = json.load(f)
        except (OSError, ValueError):
            cache = {}
        if cache.get("_master_aes_check") is None:
            cache = {}
        todo = [i for i in self.ids if i not in cache]
        # One sign-in always happens: the publish AES key is not cached (it changes when
        # the master restarts).
        if not todo:
            todo = [self.ids[0]]
        queue = asyncio.Queue()
        for i in todo:
            queue.put_nowait(i)
        result = {}

        async def worker():
            sock = ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.master_uri)
            try:
                while not queue.empty():
                    i = queue.get_nowait()
                    result[i] = await self.sign_in(sock, i)
            finally:
                sock.close()

        await asyncio.gather(*(worker() for _ in range(min(8, len(todo)))))
        aes = None
        for i, (session, aes_key) in result.items():
            cache[i] = session
            aes = aes_key
        cache["_master_aes_check"] = True
        with open(cache_path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(cache, f)
        os.replace(cache_path + ".tmp", cache_path)
        self.sessions = {i: cache[i] for i in self.ids}
        return aes

    async def sign_in(self, sock, minion_id):
        load = {
            "cmd": "_auth",
            "id": minion_id,
            "nonce": uuid.uuid4().hex,
            "enc_algo": ENC,
            "sig_algo": SIG,
            "pub": salt.crypt.clean_key(self.pub),
        }
        await sock.send(salt.payload.dumps({"enc": "clear", "load": load, "version": 3}))
        reply = salt.payload.loads(await sock.recv())
        ret = reply.get("load")
        if isinstance(ret, bytes):
            ret = salt.payload.loads(ret)
        if not isinstance(ret, dict) or "session" not in ret:
            raise SystemExit(f"minion_sim: sign-in of {minion_id} refused: {ret!r}")
        session = self.private.decrypt(ret["session"], ENC)
        aes = self.private.decrypt(ret["aes"], ENC)
        return session.decode(), aes


def targets(ids, idset, load):
    """The simulated ids a publish targets (glob, list, pcre and simple compounds)."""
    tgt, kind = load.get("tgt"), load.get("tgt_type", "glob")
    if kind == "list":
        wanted = tgt if isinstance(tgt, list) else str(tgt).split(",")
        return [i for i in wanted if i in idset]
    if kind == "glob":
        if tgt == "*":
            return list(ids)
        return [i for i in ids if fnmatch.fnmatch(i, str(tgt))]
    if kind == "pcre":
        rx = re.compile(str(tgt))
        return [i for i in ids if rx.match(i)]
    if kind == "compound":
        out = []
        for word in str(tgt).split():
            if word.startswith("L@"):
                out.extend(i for i in word[2:].split(",") if i in idset)
            elif "@" not in word and word not in ("and", "or", "not", "(", ")"):
                out.extend(i for i in ids if fnmatch.fnmatch(i, word))
        return list(dict.fromkeys(out))
    return []


class Simulator:
    """Answers publishes for the fleet."""

    def __init__(self, fleet, aes, args):
        self.fleet = fleet
        self.args = args
        self.pub_crypticle = salt.crypt.Crypticle(fleet.opts, aes)
        self.crypticles = {}
        self.idset = set(fleet.ids)
        self.silent = silent_ids(fleet.ids, args.silent)
        lo, _, hi = args.delay.partition(":")
        self.delay = (float(lo or 0), float(hi or lo or 0))
        self.running = {}  # id -> {jid: load}
        # Two queues, each with its own connections: a real minion answers find_job at once
        # whatever its other jobs do, and its returns do not wait for other minions'
        # find_job answers either. (One priority queue starved the returns at 10,000
        # minions: each find_job round is N answers, and the rounds came faster than the
        # master took them.)
        self.returns = asyncio.Queue()
        self.find_job_answers = asyncio.Queue()
        self.resent = 0
        self.stats = {}
        self.stats_dirty = False

    def crypticle(self, minion_id):
        c = self.crypticles.get(minion_id)
        if c is None:
            c = salt.crypt.Crypticle(self.fleet.opts, self.fleet.sessions[minion_id])
            self.crypticles[minion_id] = c
        return c

    def on_publish(self, load):
        ids = [i for i in targets(self.fleet.ids, self.idset, load) if i not in self.silent]
        jid, fun = load.get("jid"), load.get("fun")
        loop = asyncio.get_running_loop()
        if fun == "saltutil.find_job":
            asked = (load.get("arg") or [None])[0]
            for i in ids:
                job = self.running.get(i, {}).get(asked)
                ret = {"jid": asked, "fun": job.get("fun"), "pid": 1} if job else {}
                self.find_job_answers.put_nowait((i, load, ret))
            return
        value = "x" * self.args.size if self.args.size > 0 else True
        lo, hi = self.delay
        for i in ids:
            self.running.setdefault(i, {})[jid] = load
            loop.call_later(random.uniform(lo, hi), self.finish, i, load, value)

    def finish(self, minion_id, load, value):
        # Still "running" (for find_job) until the master has the return.
        self.returns.put_nowait((minion_id, load, value))

    def return_load(self, minion_id, load, value):
        return {
            "cmd": "_return",
            "id": minion_id,
            "jid": load.get("jid"),
            "fun": load.get("fun"),
            "fun_args": load.get("arg", []),
            "return": value,
            "retcode": 0,
            "success": True,
            "tok": self.fleet.tok,
        }

    def connect(self, ctx):
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.fleet.master_uri)
        return sock

    async def request(self, ctx, sock, frame):
        """Sends one `_return` and waits for the master's reply; a reply that does not come
        within --reply-timeout is sent again on a new connection, as a minion's channel
        retries (the master may then store it twice, as it would for a minion)."""
        while True:
            await sock.send(frame)
            if await sock.poll(self.args.reply_timeout * 1000):
                await sock.recv()
                return sock
            sock.close()
            sock = self.connect(ctx)
            self.resent += 1
            print(f"minion_sim: no reply in {self.args.reply_timeout} s, sending again "
                  f"({self.resent} so far)", file=sys.stderr, flush=True)

    async def sender(self, ctx, queue):
        sock = self.connect(ctx)
        while True:
            minion_id, load, value = await queue.get()
            body = self.crypticle(minion_id).dumps(self.return_load(minion_id, load, value))
            payload = {"enc": "aes", "load": body, "version": 3, "id": minion_id}
            sock = await self.request(ctx, sock, salt.payload.dumps(payload))
            jid = load.get("jid")
            if load.get("fun") != "saltutil.find_job":
                self.running.get(minion_id, {}).pop(jid, None)
            st = self.stats.setdefault(jid, {"fun": load.get("fun"), "returns": 0,
                                             "tgt_type": load.get("tgt_type", "glob")})
            st["returns"] += 1
            st["last_return"] = time.time()
            self.stats_dirty = True

    async def subscriber(self, sub):
        while True:
            frames = await sub.recv_multipart()
            try:
                msg = salt.payload.loads(frames[-1])
                if isinstance(msg, dict) and msg.get("enc") == "aes":
                    load = self.pub_crypticle.loads(msg["load"])
                    if isinstance(load, dict) and "load" in load and "jid" not in load:
                        load = load["load"]
                    if isinstance(load, dict) and "jid" in load:
                        self.on_publish(load)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the fleet
                print(f"minion_sim: ignored a publish: {exc!r}", file=sys.stderr)

    async def stats_writer(self):
        while self.args.stats:
            await asyncio.sleep(0.2)
            if self.stats_dirty:
                self.stats_dirty = False
                tmp = self.args.stats + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(self.stats, f)
                os.replace(tmp, self.args.stats)


async def main():
    args = parse_args()
    opts = salt.config.master_config(args.master_config)
    fleet = Fleet(opts, args)
    if args.remove:
        fleet.remove()
        return
    fleet.keys()
    fleet.accept()
    ctx = zmq.asyncio.Context()
    aes = await fleet.sign_in_all(ctx)
    sim = Simulator(fleet, aes, args)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(fleet.pub_uri)
    await asyncio.sleep(1.0)  # let the subscription reach the master before "ready"
    if args.ready:
        with open(args.ready + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"ids": fleet.ids, "silent": sorted(sim.silent)}, f)
        os.replace(args.ready + ".tmp", args.ready)
    print(f"minion_sim: {len(fleet.ids)} minions up", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, stop.set)
    tasks = [asyncio.create_task(sim.subscriber(sub)), asyncio.create_task(sim.stats_writer())]
    tasks += [asyncio.create_task(sim.sender(ctx, sim.returns)) for _ in range(args.senders)]
    tasks += [asyncio.create_task(sim.sender(ctx, sim.find_job_answers))
              for _ in range(max(1, args.senders // 4))]
    for t in tasks:
        # A task that dies must say so (and stop the fleet), not leave the rest waiting.
        t.add_done_callback(lambda t: t.cancelled() or t.exception() is None or (
            print(f"minion_sim: a task failed: {t.exception()!r}", file=sys.stderr,
                  flush=True), stop.set()))
    await stop.wait()
    for t in tasks:
        t.cancel()
    ctx.destroy(linger=0)


if __name__ == "__main__":
    asyncio.run(main())
