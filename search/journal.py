"""Optuna's journal file, kept readable after a crash or a full disk cut its last record short."""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
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


class RepairingJournalBackend(JournalFileBackend):
    """Optuna's journal file backend, which drops a broken last record (`broken_tail`) before appending. Optuna's
    reader skips such a line while it is the last; appended to, it became part of a line that no reader can
    parse, and every study in the journal was lost to every command."""

    def __init__(self, file_path: str) -> None:
        self._repair_lock = JournalFileSymlinkLock(file_path)
        super().__init__(file_path, lock_obj=self._repair_lock)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The journal's lock, which every writer takes (Optuna's append too): no record is half-written by a
        live process while it is held."""
        self._repair_lock.acquire()
        try:
            yield
        finally:
            self._repair_lock.release()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Drop a broken last record, then append as Optuna does."""
        try:
            self._drop_broken_tail()
            super().append_logs(logs)
        except OSError as exc:  # e.g. a full disk: the storage is lost, as a database's is (search.storage)
            raise optuna.exceptions.StorageInternalError(f"cannot write {self._file_path}") from exc

    def _drop_broken_tail(self) -> None:
        """Cut the journal back to its last whole record (`broken_tail`), saying so."""
        with self._locked(), open(self._file_path, "rb+") as journal:
            size = journal.seek(0, os.SEEK_END)
            journal.seek(max(0, size - 1))
            # A write cut short (rare): read it all, to find the last line end however long the line; else the tail.
            start = max(0, size - TAIL_BYTES) if journal.read(1) == b"\n" else 0
            journal.seek(start)
            cut = broken_tail(journal.read(), whole=start == 0)
            if cut:
                journal.truncate(size - cut)
                Console().warn(f"note: journal {self._file_path}: dropped its last {cut} bytes, a record cut short "
                               "(by a crash or a full disk) that no reader can use")
