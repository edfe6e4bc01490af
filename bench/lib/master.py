"""The salt-master the benches talk to: one scripts/salt-env starts (and stops), or a
running one named with --env; and bench/minion_sim.py, simulated minions real to it.
"""

import os
import subprocess
import time

from . import ROOT
from .procs import cpu_ticks, pids_with_cmdline

SALT_ENV = os.path.join(ROOT, "scripts", "salt-env")
MINION_SIM = os.path.join(ROOT, "bench", "minion_sim.py")


def read_env_sh(path):
    """The variables a salt-env's env.sh exports, quotes stripped."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                env[k] = v.strip('"').strip("'")
    return env


def read_master_key(config, key):
    """A top-level `key: value` of a master config file."""
    with open(config) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    raise RuntimeError(f"{key} not found in {config}")


def salt_env_down(directory, quiet=False):
    """`scripts/salt-env down`: stops everything started in `directory` (quiet: no
    output)."""
    quiet_out = subprocess.DEVNULL if quiet else None
    subprocess.run([SALT_ENV, "down", directory], stdout=quiet_out, stderr=quiet_out)


class SaltMaster:
    """A scripts/salt-env directory: its master config, venv and test users (from its
    env.sh). `own`: started here, so `stop` takes it down."""

    def __init__(self, directory, own):
        self.dir = os.path.abspath(directory)
        self.own = own
        self.env = read_env_sh(os.path.join(self.dir, "env.sh"))
        self.config = self.env["SALT_MASTER_CONFIG"]
        self.venv = self.env["SALT_VENV"]
        self.version = self.env.get("SALT_VERSION", "?")
        self.user = self.env.get("SALT_TEST_USER", "saltdev")
        self.password = self.env.get("SALT_TEST_PASSWORD", "saltdev")

    @classmethod
    def start(cls, directory, port_base, minions, version=None, transport=None, quiet=False):
        """`scripts/salt-env up` in `directory` with SALT_TEST_PORT_BASE=`port_base`
        (publish port; ret_port is +1); quiet: its stdout is dropped."""
        argv = [SALT_ENV, "up", directory, "--minions", str(minions)]
        if version:
            argv += ["--version", version]
        if transport:
            argv += ["--transport", transport]
        try:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL if quiet else None,
                           env=dict(os.environ, SALT_TEST_PORT_BASE=str(port_base)))
        except BaseException:  # a failed or interrupted start: whatever did start is stopped
            salt_env_down(directory, quiet)
            raise
        return cls(directory, own=True)

    @classmethod
    def attach(cls, directory):
        """A salt-env that is already running (not stopped by `stop`)."""
        return cls(directory, own=False)

    def stop(self, quiet=False):
        """`scripts/salt-env down`, if this script started the master."""
        if self.own:
            salt_env_down(self.dir, quiet)

    def config_key(self, key):
        """A top-level value of the master config."""
        return read_master_key(self.config, key)

    def pids(self, sub="", also=b""):
        """The master's and minions' processes (command line in the directory, under `sub`,
        and containing `also`)."""
        return pids_with_cmdline((self.dir.rstrip("/") + "/" + sub).encode(), also)

    def cpu(self, interval=0.5):
        """CPU (in cores) the master and minions used over `interval` seconds."""
        a = cpu_ticks(self.pids())
        time.sleep(interval)
        b = cpu_ticks(self.pids())  # processes forked meanwhile count with all their time
        used = sum(t - a.get(p, 0) for p, t in b.items())
        return used / os.sysconf("SC_CLK_TCK") / interval

    def minion_logs(self):
        """{minion.log path: its size now}: where `minion_health` starts reading."""
        logs = {}
        mdir = os.path.join(self.dir, "minions")
        for m in sorted(os.listdir(mdir)):
            path = os.path.join(mdir, m, "minion.log")
            logs[path] = os.path.getsize(path) if os.path.exists(path) else 0
        return logs


def minion_health(logs):
    """Crashed minion job processes logged since `logs` ({path: offset}, from
    SaltMaster.minion_logs) were taken (a sign of overload). ("failed to return the job
    information" is not counted: 3007.16 job processes log it for every job after waiting
    30 s for a reply event, although the master got the return.)"""
    spin = crashed = 0
    for path, offset in logs.items():
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                for line in f:
                    if b"error on read: [Errno 22]" in line:
                        spin += 1
                    elif b"An un-handled exception from the multiprocessing process" in line:
                        crashed += 1
        except OSError:
            pass
    return {"read_errors": spin, "crashed_job_processes": crashed}


def minion_sim_argv(master, count, delay, ready, silent=None, stats=None):
    """The command line of bench/minion_sim.py (run by the master's venv) with `count`
    minions of `master` returning after a delay in `delay` ("lo:hi" s); it writes `ready`
    (JSON) once they are all up."""
    argv = [f"{master.venv}/bin/python", MINION_SIM, "--master-config", master.config,
            "--count", str(count)]
    if silent is not None:
        argv += ["--silent", str(silent)]
    argv += ["--delay", delay, "--ready", ready]
    if stats is not None:
        argv += ["--stats", stats]
    return argv


def wait_ready(ready, exited, seconds=None):
    """Waits for the simulator's `ready` file; False when `exited()` says it died first or
    `seconds` (None: no limit) went by."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while not os.path.exists(ready):
        if exited() or (deadline is not None and time.monotonic() > deadline):
            return False
        time.sleep(0.5)
    return True
