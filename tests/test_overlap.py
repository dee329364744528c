"""The study's Keras-free start in a forked process: results and errors come back, nothing outlives it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from search.errors import DataError
from search.overlap import can_fork, in_forked_process


def run_fresh(body: str) -> list[str]:
    """Run code in a fresh Python (no Keras imported, one thread: where hpsearch forks); its output lines."""
    imports = "import multiprocessing, os\nfrom search.overlap import can_fork, in_forked_process\n"
    code = imports + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_the_work_runs_in_another_process_and_its_result_comes_back() -> None:
    assert run_fresh("""
        print(can_fork())
        with in_forked_process(lambda: (os.getpid(), [1, 2, 3]), "working") as result:
            pid, value = result()
        print(pid != os.getpid(), value, multiprocessing.active_children())
    """) == ["True", "True [1, 2, 3] []"]


def test_the_works_error_is_raised_here() -> None:
    lines = run_fresh("""
        from search.errors import DataError

        def bad():
            raise DataError("train.csv: line 3, column 'Label': 'x', expected an integer")

        def unpicklable():
            raise DataError(lambda: None)  # an argument that cannot cross the pipe

        for work in (bad, unpicklable):
            with in_forked_process(work, "working") as result:
                try:
                    result()
                except Exception as exc:
                    print(type(exc).__name__, exc)
    """)
    assert lines[0] == "DataError train.csv: line 3, column 'Label': 'x', expected an integer"
    assert lines[1].startswith("RuntimeError DataError: <function unpicklable.<locals>.<lambda> at")


def test_a_process_that_dies_without_a_result_is_one_line_saying_what_it_was_doing() -> None:
    """Killed for memory while it read a large train.csv, it ended the study in a 40-line traceback."""
    assert run_fresh("""
        import signal
        from search.errors import UserError

        for work in (lambda: os._exit(3), lambda: os.kill(os.getpid(), signal.SIGKILL)):
            with in_forked_process(work, "preparing the data") as result:
                try:
                    result()
                except UserError as exc:
                    print(exc)
    """) == ["the process preparing the data ended before it finished (exit code 3: an error, see the output above); "
             "run the same command again",
             "the process preparing the data ended before it finished (killed by SIGKILL, out of memory?); run the "
             "same command again"]


def test_leaving_the_block_early_ends_the_process() -> None:
    """An error here (e.g. an unknown backend) while the work still runs: the process is ended, not awaited."""
    assert run_fresh("""
        import threading
        try:
            with in_forked_process(threading.Event().wait, "waiting") as result:  # would wait forever
                raise KeyError("stop")
        except KeyError:
            pass
        print(multiprocessing.active_children())
    """) == ["[]"]


def test_the_work_runs_here_where_keras_is_imported_already() -> None:
    """This test process imported Keras (conftest): nothing left to hide, and TensorFlow's threads make a fork
    unsafe, so the work runs in this process."""
    assert not can_fork()
    with in_forked_process(os.getpid, "working") as result:
        assert result() == os.getpid()
    with in_forked_process(lambda: (_ for _ in ()).throw(DataError("bad")), "working") as result, \
            pytest.raises(DataError, match="bad"):
        result()
