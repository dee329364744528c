"""Worker processes of `study --workers K`: started with their settings on stdin (never on argv, which
every local user can read), interrupted exactly once through the parent, and never outliving it."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from search.config import StudyConfig
from search.console import Console
from search.signals import ending, signals_ignored, sigterm_as_interrupt
from search.study import run_worker

# After its parent is gone, or its parent passed an interrupt on, a worker gets this long to record its interrupted
# trial before it is ended. Longer than the 30 s after which Optuna's journal storage breaks a lock file left
# behind: a sibling worker interrupted while taking the lock can leave one, and the trial must still be recorded
# once it is broken.
ORPHAN_GRACE_SECONDS = 45
# A worker's exit code when it gave up after --max-failures failed trials (1 is Python's for a crash).
STOPPED_ON_FAILURES = 3
# JAX's cap on one process's GPU memory, as a fraction of the card (JAX reads either name; both set is an error).
# It holds with preallocation off too (search.runtime turns it off); unset, each process may take 75%.
GPU_MEMORY_FRACTION_VARIABLES = ("XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION")
GPU_MEMORY_SHARED = 0.9  # of the card, split over the workers; the rest for the parent and other programs
# Workers on a JAX GPU without --workers: 4 finished 3.26x the trials per hour of 1 on an H200 (BENCHMARKS.md:
# CNN space, 12,000 images, 5-epoch trials); fewer where the card's shared memory would give each less than
# GPU_WORKER_MIB (~1.8x the 4,502 MiB that the most demanding worker of that benchmark held) plus the data.
GPU_WORKERS = 4
GPU_WORKER_MIB = 8192


def gpu_memory_mib() -> int | None:
    """The memory in MiB of the GPU this process trains on (the first of CUDA_VISIBLE_DEVICES) as nvidia-smi
    reports it; None where it cannot say, and for a MIG slice (nvidia-smi reports the whole card's)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    if not visible or visible.startswith("MIG-"):
        return None
    try:
        listed = subprocess.run(["nvidia-smi", "-i", visible, "--query-gpu=memory.total,mig.mode.current",
                                 "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30,
                                check=True).stdout
        memory, mig = (field.strip() for field in listed.splitlines()[0].split(","))
        return None if mig == "Enabled" else int(memory)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def default_workers(jax_gpu: bool, data_mib: float = 0.0) -> int:
    """Worker processes without --workers: on a JAX GPU as many as its memory holds (GPU_WORKER_MIB each, plus
    the data, which the on-device loop keeps there), up to GPU_WORKERS; else 1 (on CPU, K processes share the same
    cores; TensorFlow on a GPU would claim the whole card in each)."""
    memory = gpu_memory_mib() if jax_gpu else None
    if memory is None:
        return 1
    return max(1, min(GPU_WORKERS, int(GPU_MEMORY_SHARED * memory // (GPU_WORKER_MIB + data_mib))))


def _shares(total: int, workers: int) -> list[int]:
    """Split a trial budget as evenly as possible over workers (no empty shares)."""
    return [n for n in (total // workers + (i < total % workers) for i in range(workers)) if n]


def worker_environment(workers: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of each of `workers` processes: the parent's, with each one's GPU memory bounded to its
    share of the card unless the user set a bound."""
    env = dict(environ)
    if not any(name in env for name in GPU_MEMORY_FRACTION_VARIABLES):
        env[GPU_MEMORY_FRACTION_VARIABLES[0]] = f"{GPU_MEMORY_SHARED / workers:.3f}"
    return env


def run_workers(config: StudyConfig, remaining: int) -> list[int]:
    """Start one process per share of the remaining trials on the shared storage; return their exit codes.

    Workers run in their own session, so a terminal's Ctrl-C reaches only this process, which passes it on
    to each worker once. Their stdin stays open: its end of file tells a worker that this process is gone."""
    procs, shares = [], _shares(remaining, config.worker_count)
    env = worker_environment(max(1, len(shares)), os.environ)  # the card split over the processes that start
    try:
        for index, quota in enumerate(shares):
            proc = subprocess.Popen([sys.executable, "-m", "search", "worker"], stdin=subprocess.PIPE,
                                    start_new_session=True, env=env)
            procs.append(proc)
            assert proc.stdin is not None
            payload = json.dumps({**dataclasses.asdict(config), "quota": quota, "worker": index})
            with contextlib.suppress(BrokenPipeError):  # a worker that died at start shows in its exit code
                proc.stdin.write(payload.encode() + b"\n")
                proc.stdin.flush()
        codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt:
        with signals_ignored():  # a second Ctrl-C must not land in a worker's save
            killed = stop_workers(procs, ORPHAN_GRACE_SECONDS)
        for index, proc in enumerate(procs):
            if proc.returncode not in (0, 130):  # not stopped as asked: a trial it ran may stay RUNNING
                late = f" as it had not stopped {ORPHAN_GRACE_SECONDS} s after the interrupt" if index in killed else ""
                Console().warn(f"[w{index}] {ending(proc.returncode)}{late}; a trial it was running, if any, stays "
                               "RUNNING until a rerun fails it")  # it may have died starting, before any trial
        raise
    finally:
        for proc in procs:
            if proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
    return codes


def stop_workers(procs: list[subprocess.Popen], grace: float) -> list[int]:
    """Interrupt each running worker once, wait up to `grace` seconds for them all to record what they ran, and kill
    any still running then (one whose storage hangs kept the parent waiting for ever); the indexes of those killed.
    Their stdin stays open until they are done: its end of file would interrupt them a second time, while they
    record the first (seen in CI: an interrupted trial without its fail_reason)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline, killed = time.monotonic() + grace, []
    for index, proc in enumerate(procs):
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed.append(index)
    return killed


def _watch_parent() -> None:
    """Block until stdin ends (the parent is gone), then interrupt this worker; end it if it lingers."""
    while os.read(0, 4096):  # the raw fd: a daemon thread must not hold sys.stdin's lock at exit
        pass
    os.kill(os.getpid(), signal.SIGINT)
    threading.Event().wait(ORPHAN_GRACE_SECONDS)
    os._exit(130)


def read_share(payload: str) -> tuple[StudyConfig, int, int]:
    """A worker's settings as run_workers sends them on stdin: the study's config, its quota of trials, its index."""
    fields: dict[str, Any] = json.loads(payload)
    quota, worker = fields.pop("quota"), fields.pop("worker")
    return StudyConfig(**fields), quota, worker


def worker_main(config: StudyConfig, quota: int) -> int:
    """Entry point of a worker process: run its quota; exit STOPPED_ON_FAILURES if it stopped on failures."""
    threading.Thread(target=_watch_parent, name="watch-parent", daemon=True).start()
    with sigterm_as_interrupt():
        budget = run_worker(config, quota)
    return STOPPED_ON_FAILURES if budget.stopped_on_failures else 0
