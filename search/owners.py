"""Which process runs each trial, so a RUNNING trial left by a dead worker is told apart from a live one.

The journal storage has no heartbeats: a worker killed there leaves its trial RUNNING for ever. Each trial
records its worker (machine and pid); a RUNNING trial is an orphan when that worker was on this machine and is
gone, or when no hpsearch worker recorded itself within five minutes of its start. A machine is a host name and a
PID namespace: containers that share the host's name (host networking) number their processes apart, and one
cannot see another's. Orphans never count toward --trials, and `study --fail-orphans` marks them failed."""
from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.records import TrialRecord

ORPHAN_REASON = "orphaned: its worker process was gone (marked by --fail-orphans)"
UNCLAIMED_SECONDS = 300  # how long a RUNNING trial may go without its worker's record before it is an orphan


def machine() -> str:
    """Where this process's pid means something: host name/PID namespace (the host name alone without /proc)."""
    try:
        return f"{socket.gethostname()}/pidns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def owner() -> str:
    """This process as a trial's owner: machine:pid."""
    return f"{machine()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass  # no /proc, no such process, or another user's process hidden (hidepid): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphan(trial: FrozenTrial) -> bool:
    """A RUNNING trial whose worker is known to be gone (trials of other machines are taken as live)."""
    where, _, pid = TrialRecord.of(trial).worker.rpartition(":")
    if not pid.isdigit():  # no hpsearch worker recorded itself: not one, or one that died before it could
        # A new trial is RUNNING from Optuna's ask, before its worker's first write (sampling may take seconds).
        started = trial.datetime_start or datetime.datetime.now()
        return datetime.datetime.now() - started > datetime.timedelta(seconds=UNCLAIMED_SECONDS)
    # A bare host name is a record of an hpsearch that did not note the PID namespace: judged as it judged them.
    return where in (machine(), socket.gethostname()) and not _alive(int(pid))


def running(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """The study's RUNNING trials split into (live, orphans)."""
    live: list[FrozenTrial] = []
    orphans: list[FrozenTrial] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        (orphans if is_orphan(trial) else live).append(trial)
    return live, orphans


def fail(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Mark a RUNNING or WAITING trial of any process failed, saying why."""
    # Optuna has no public setter for another process's trial; its own fail_stale_trials uses _trial_id too.
    if trial.state == TrialState.WAITING and not study._storage.set_trial_state_values(
            trial._trial_id, TrialState.RUNNING):  # claimed as Optuna's ask claims one: tell refuses WAITING
        return  # another process took it meanwhile
    records.update(optuna.Trial(study, trial._trial_id), fail_reason=reason)
    study.tell(trial.number, state=TrialState.FAIL)


def fail_orphans(study: optuna.Study) -> list[int]:
    """Mark every orphaned RUNNING trial failed, saying why; return their numbers."""
    _, orphans = running(study)
    for trial in orphans:
        fail(study, trial, ORPHAN_REASON)
    return [t.number for t in orphans]
