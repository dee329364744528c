"""Binary caches of decoded data beside it: .npz files trusted only when their stamp matches, never fatal."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from search.export_files import written_whole

# Bump when what a cache holds changes, so caches written by older versions are rebuilt.
VERSION = 2


def load(path: Path, stamp: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if `path` holds a cache of this version and stamp; None when absent, stale or damaged."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if int(npz["version"]) != VERSION or str(npz["stamp"]) != stamp:
                return None
            return {key: npz[key] for key in npz.files if key not in ("version", "stamp")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # absent, truncated or garbage: the caller rebuilds it


def save(path: Path, stamp: str, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache whole, through a temporary file unique to this process (skipped if unwritable)."""
    try:
        with written_whole(path) as temporary, temporary.open("wb") as out:
            np.savez(out, version=VERSION, stamp=stamp, **arrays)  # type: ignore[arg-type]
    except OSError:
        return  # a read-only data folder still works, only without the cache
