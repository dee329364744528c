"""Optuna's journal file, kept readable after a crash or a full disk cut its last record short."""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from search.console import Console

# A record is one line of JSON (a trial's history at 50 epochs: ~4 KB): the tail read to check the last one (a longer
# last line that is whole but no JSON is left to Optuna's reader).
TAIL_BYTES = 1 << 16


def broken_tail(tail: bytes, whole: bool) -> int:
    """How many bytes at the end of a journal are not whole records: a last line without its newline (a write cut
    short), and a last line that is no JSON. `tail`: the file's last bytes (`whole`: all of it). 0 when it ends in
    a whole record; a line that may begin before the tail is left to Optuna's reader."""
    end = len(tail)
    while end:
        if tail[end - 1:end] != b"\n":
            start = tail.rfind(b"\n", 0, end) + 1
        else:
            start = tail.rfind(b"\n", 0, end - 1) + 1
            try:
                json.loads(tail[start:end])
                break
            except ValueError:  # also UnicodeDecodeError
                pass
        if start == 0 and not whole:
            break
        end = start
    return len(tail) - end


class RepairingLock(JournalFileSymlinkLock):
    """Optuna's journal lock, which on each acquire first drops a broken last record (`broken_tail`): Optuna's
    append takes it just before it writes, so the record is checked and written in one hold of the lock (in two,
    another worker's record cut short between them took this one's with it). Optuna's reader skips a broken line
    while it is the last; appended to, it became part of a line that no reader can parse, and every study in the
    journal was lost to every command."""

    def __init__(self, file_path: str) -> None:
        # The lock is a symlink to the journal: to a relative path, resolved from the link's own folder, it dangled;
        # Optuna's check of a lock left behind by a killed worker then failed on every try, and every later run on
        # that journal (`journal:///studies/cnn.log`) spun on one core for ever instead of breaking it after 30 s.
        file_path = os.path.abspath(file_path)
        super().__init__(file_path)
        self.journal = file_path

    def acquire(self) -> bool:
        """Take the lock, then mend the journal's end."""
        with contextlib.suppress(OSError):  # a dangling lock an earlier hpsearch left, past its grace period
            grace = self.grace_period or 0
            if not os.path.exists(self._lock_file) and time.time() - os.lstat(self._lock_file).st_mtime > grace:
                os.unlink(self._lock_file)  # Optuna cannot read its age through the link, and waited for ever
        super().acquire()
        try:
            self._drop_broken_tail()
        except BaseException:
            self.release()  # Optuna releases only a lock whose acquire returned
            raise
        return True

    def _drop_broken_tail(self) -> None:
        """Cut the journal back to its last whole record (`broken_tail`), saying so."""
        with open(self.journal, "rb+") as journal:
            size = journal.seek(0, os.SEEK_END)
            journal.seek(max(0, size - 1))
            # A write cut short (rare): read it all, to find the last line end however long the line; else the tail.
            start = max(0, size - TAIL_BYTES) if journal.read(1) == b"\n" else 0
            journal.seek(start)
            cut = broken_tail(journal.read(), whole=start == 0)
            if cut:
                journal.truncate(size - cut)
                Console().warn(f"note: journal {self.journal}: dropped its last {cut} bytes, a record cut short "
                               "(by a crash or a full disk) that no reader can use")


class RepairingJournalBackend(JournalFileBackend):
    """Optuna's journal file backend with a `RepairingLock`; a failed write is a lost storage, as a database's."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path, lock_obj=RepairingLock(file_path))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append as Optuna does; an OSError (e.g. a full disk) as Optuna's storage error (search.storage)."""
        try:
            super().append_logs(logs)
        except OSError as exc:
            raise optuna.exceptions.StorageInternalError(f"cannot write {self._file_path}") from exc
