"""Binary caches of decoded data beside it: .npz files trusted only when their stamp matches, never fatal."""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

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
    """Write the cache atomically through a temporary file unique to this process (skipped if unwritable)."""
    try:
        handle, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return  # a read-only data folder still works, only without the cache
    try:
        os.fchmod(handle, 0o644)  # mkstemp makes it private; the data it caches is not
        with os.fdopen(handle, "wb") as out:
            np.savez(out, version=VERSION, stamp=stamp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
