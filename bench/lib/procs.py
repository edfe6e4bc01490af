"""Processes the benches start and stop, and what /proc says about them.

A `Proc` runs in its own session and is stopped by its process group (TERM, then KILL for
whatever ignored it), so workers and children go with it; `Processes` is a script's set of
them, stopped together at the end, also on Ctrl-C. The rest reads /proc: process trees,
RSS, CPU time and open files, sampled while a load runs by `RssSampler`. Also free ports
and waiting for a port to accept connections.
"""

import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time


class Proc:
    """A process this script started, in its own session; stopped by its process group id.
    Its stdout and stderr go to `log_path` (appended to)."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, preexec_fn=None):
        self.name = name
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True, preexec_fn=preexec_fn)
        self.pid = self.p.pid

    def alive(self):
        """Whether the process has not exited yet."""
        return self.p.poll() is None

    def stop(self, grace=10.0):
        """TERM to the group, up to `grace` seconds for the process to exit, then KILL to
        whatever is left of the group (workers that ignored TERM)."""
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


class Processes:
    """The processes a script started, by name, each logging to `<work>/<name>.log`;
    `stop_all` stops them in the reverse order of their start."""

    def __init__(self, work, log=None):
        self.work = work
        self.log = log
        self.procs = {}

    def spawn(self, name, argv, **kw):
        """Starts `argv` as the process `name` (keyword arguments: see `Proc`)."""
        p = Proc(name, argv, os.path.join(self.work, f"{name}.log"), **kw)
        self.procs[name] = p
        return p

    def get(self, name):
        """The running process `name`, or None."""
        return self.procs.get(name)

    def stop(self, name, grace=10.0):
        """Stops the process `name`, if there is one."""
        p = self.procs.pop(name, None)
        if p is not None:
            p.stop(grace)

    def stop_all(self, grace=10.0):
        """Stops every process, the last started first; an error stopping one is logged and
        the others are still stopped."""
        for name in reversed(list(self.procs)):
            try:
                self.procs[name].stop(grace)
            except Exception as e:  # keep stopping the others
                if self.log:
                    self.log(f"stopping {name}: {e}")
        self.procs = {}


def raise_nofile():
    """Raises this process's open-file limit to its hard limit (as the shipped units do;
    also a `preexec_fn` for the servers)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- ports --------------------------------------------------------------------------------


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port, seconds, pause=0.05):
    """Tries to connect to 127.0.0.1:`port` every `pause` seconds for up to `seconds`;
    whether it succeeded."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(pause)


def wait_path(path, seconds, pause=0.05):
    """Checks every `pause` seconds, for up to `seconds`, whether `path` (a socket) exists;
    whether it does."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
    return True


# -- /proc --------------------------------------------------------------------------------


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (field 3 onwards)."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def children_map():
    """Every process's children: {ppid: [pid, ...]}."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(stat_fields(d)[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(roots, kids=None):
    """The pids of `roots` and all their descendants (`kids`: a children_map() to use)."""
    kids = kids if kids is not None else children_map()
    out, todo = [], [r for r in roots if r]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def status_kb(pid, key):
    """A kB value of /proc/PID/status (VmRSS, VmHWM, ...); 0 when the line is missing."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_kb(pid):
    """The RSS of one process in kB; 0 when it is gone."""
    try:
        return status_kb(pid, "VmRSS")
    except OSError:
        return 0


def cpu_seconds(pids):
    """User + system CPU seconds of the processes `pids` (those gone count 0)."""
    tck, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            fields = stat_fields(pid)
            total += (int(fields[11]) + int(fields[12])) / tck
        except (OSError, ValueError, IndexError):
            pass
    return total


def write_syscalls(pids):
    """Write system calls the processes `pids` made so far (/proc/PID/io `syscw`; gone: 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/io") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("syscw:"))
        except (OSError, ValueError, IndexError, StopIteration):
            pass
    return total


class WriteCalls:
    """Write and send system calls of the processes `pids` from now until `stop()`.

    Counted by `perf stat` on the syscall tracepoints (write, writev, sendto, sendmsg)
    where perf is installed and allowed (root, or kernel.perf_event_paranoid <= -1);
    otherwise from /proc/PID/io `syscw`, which counts write(2) and writev(2) only: Rust's
    std writes a socket with send(2), which it misses. `stop()` says which it was."""

    EVENTS = ",".join(f"syscalls:sys_enter_{c}" for c in ("write", "writev", "sendto", "sendmsg"))

    def __init__(self, pids):
        self.pids = [p for p in pids if p]
        self.syscw = write_syscalls(self.pids)
        self.perf = None
        self.out = f"/tmp/write-calls-{os.getpid()}-{time.monotonic_ns()}.csv"
        if self.pids and shutil.which("perf"):
            self.perf = subprocess.Popen(
                ["perf", "stat", "-x,", "-o", self.out, "-e", self.EVENTS,
                 "-p", ",".join(map(str, self.pids))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # attached before the window's work starts
            if self.perf.poll() is not None:
                self.perf = None

    def stop(self):
        """(calls, "perf" or "syscw")."""
        if self.perf is not None:
            self.perf.send_signal(signal.SIGINT)
            try:
                self.perf.wait(timeout=30)
                with open(self.out) as f:
                    counts = [line.split(",")[0] for line in f if "sys_enter_" in line]
                if counts and all(c.isdigit() for c in counts):
                    return sum(map(int, counts)), "perf"
            except (OSError, subprocess.TimeoutExpired):
                self.perf.kill()
            finally:
                if os.path.exists(self.out):
                    os.remove(self.out)
        return write_syscalls(self.pids) - self.syscw, "syscw"


def cpu_ticks(pids):
    """{pid: user + system CPU clock ticks} of the processes `pids` still there."""
    out = {}
    for pid in pids:
        try:
            fields = stat_fields(pid)
            out[pid] = int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return out


def open_fds(pid):
    """How many files process `pid` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def pids_with_cmdline(needle, also=b""):
    """Pids whose command line contains the bytes `needle` and `also`."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
                if needle in cmd and also in cmd:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


class RssSampler:
    """Samples the summed RSS of process trees every `interval` seconds while a load runs
    (`with RssSampler({"app": [pid]}) as rss: ...`). `peak[name]`: the largest sum of a
    tree; `peak_single[name]`: its largest single process. The trees are looked up again
    every `refresh` seconds (0: at every sample)."""

    def __init__(self, groups, interval=0.1, refresh=0.5):
        self.groups = {k: v for k, v in groups.items() if v}  # name -> list of root pids
        self.peak = {k: 0 for k in self.groups}
        self.peak_single = {k: 0 for k in self.groups}
        self.interval, self.refresh = interval, refresh
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        trees, refreshed = {}, None
        while True:
            now = time.monotonic()
            if refreshed is None or now - refreshed > self.refresh:
                kids = children_map()
                trees = {k: process_tree(v, kids) for k, v in self.groups.items()}
                refreshed = now
            for k, pids in trees.items():
                sizes = [rss_kb(p) for p in pids]
                self.peak[k] = max(self.peak[k], sum(sizes))
                self.peak_single[k] = max(self.peak_single[k], max(sizes, default=0))
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        if self.groups:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
