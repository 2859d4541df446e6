"""A real single-node SLURM on this machine, for the tests that submit the pipeline to it.

Debian's slurmctld, slurmd and munge run in the background as children of pytest: loopback only,
no accounting (the profiles must get by with squeue), two partitions `cpu` and `gpu` on the one
GRES-less node, as the repository's profiles name them. The fixture stops exactly the daemons it
started and puts back any /etc/slurm/slurm.conf it found. The config must sit there: the slurm
executor's job step drops SLURM_CONF.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
SBIN = Path("/usr/sbin")  # the daemons: root's PATH may lack it
COMMANDS = (SBIN / "munged", SBIN / "slurmctld", SBIN / "slurmd", "munge", "sbatch", "squeue",
            "sinfo", "scontrol", "scancel")
CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by rnnlm-pipeline tests/cluster/conftest.py"
NODE = "localhost"
CPUS = min(2, os.cpu_count())  # shared with whatever else runs here; jobs take 1 each
REAL_MEMORY = 4096  # MB: above the largest mem_mb a rule asks for (train, 4000); not enforced
# Seconds slurmctld keeps a finished job: squeue, the status commands' only source, and
# scontrol, where the tests read each job's record after a slow run, see it until then.
MIN_JOB_AGE = 600
PORTS = (6817, 6818)  # slurmctld, slurmd


def slurm_conf(state):
    """One node, two partitions, loopback, no accounting, no cgroups."""
    return f"""{MARK}
ClusterName=rnnlm-test
SlurmctldHost={NODE}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
SlurmctldPort={PORTS[0]}
SlurmdPort={PORTS[1]}
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge={MIN_JOB_AGE}
SchedulerParameters=sched_interval=2
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={REAL_MEMORY} State=UNKNOWN
PartitionName=cpu Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={NODE} MaxTime=INFINITE State=UP
"""


def install():
    """Debian's packages: apt-get install, after apt-get update when the lists are stale."""
    if os.geteuid() != 0:
        pytest.skip("a local SLURM needs root (its daemons, /etc/slurm/slurm.conf)")
    if all(shutil.which(c) for c in map(str, COMMANDS)):
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"a local SLURM needs apt-get to install Debian's {', '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"apt-get install {' '.join(PACKAGES)}:\n{done.stderr}"


def in_use(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def munge_works():
    cred = subprocess.run(["munge", "-n"], capture_output=True)
    return cred.returncode == 0 and subprocess.run(
        ["unmunge"], input=cred.stdout, capture_output=True).returncode == 0


def wait_for(what, check, timeout, logs=()):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
            pytest.fail(f"local SLURM: {what} not reached in {timeout} s\n{tails}")
        time.sleep(0.5)


def node_state():
    out = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T", "--nodes", NODE],
                         capture_output=True, text=True)
    return out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else ""


def cancel_all_jobs():
    """Cancel what is left in this test cluster (a timed-out run's jobs) and wait for it to end:
    job steps (slurmstepd) outlive slurmd."""
    ids = subprocess.run(["squeue", "--noheader", "--format=%i"], capture_output=True,
                         text=True).stdout.split()
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and subprocess.run(
            ["squeue", "--noheader", "--states=PD,R,CG,CF,S"], capture_output=True,
            text=True).stdout.strip():
        time.sleep(0.5)


def stop(processes):
    """Terminate the daemons this fixture started, by pid, last started first."""
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="package")
def slurm(tmp_path_factory):
    """A running single-node SLURM, stopped after the tests of this folder: its state folder,
    with the daemon logs in it."""
    install()
    busy = [p for p in PORTS if in_use(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken: another slurmctld/slurmd runs here; stop it first")
    state = tmp_path_factory.mktemp("slurm")
    for sub in ("ctld", "d"):
        (state / sub).mkdir()
    backup = CONF.with_name("slurm.conf.rnnlm-backup")  # left by a killed run: restored below
    if CONF.exists() and MARK not in CONF.read_text():
        shutil.copy2(CONF, backup)
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(slurm_conf(state))
    started, ctld = [], None
    try:
        if not munge_works():
            run = Path("/run/munge")
            run.mkdir(exist_ok=True)
            shutil.chown(run, "munge", "munge")
            with open(state / "munged.log", "w") as log:
                started.append(subprocess.Popen(
                    [SBIN / "munged", "--foreground", "--force"], user="munge", group="munge",
                    stdout=subprocess.DEVNULL, stderr=log))
            wait_for("munge credentials", munge_works, 20, [state / "munged.log"])
        logs = [state / "slurmctld.log", state / "slurmd.log"]
        ctld = subprocess.Popen([SBIN / "slurmctld", "-D", "-i"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        started.append(ctld)
        started.append(subprocess.Popen([SBIN / "slurmd", "-D", "-N", NODE],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        wait_for(f"node {NODE} idle", lambda: node_state() == "idle", 60, logs)
        yield state
    finally:
        if ctld is not None and ctld.poll() is None:
            cancel_all_jobs()
        stop(started)
        if backup.exists():
            shutil.move(backup, CONF)
        elif CONF.exists() and MARK in CONF.read_text():
            CONF.unlink()
