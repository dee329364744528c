"""Output that replaces earlier output whole: the export folder (refused without --force) and single files."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from search.console import Console, listed
from search.errors import DataError, UserError
from search.signals import signals_ignored

EXPORT_FILES = ("submission.csv", "model.keras", "params.json", "history.csv", "report.html")


def check_out_dir(out_dir: Path, force: bool) -> None:
    """One-line error unless out_dir is new, empty, or (with --force) holds only an earlier export."""
    here = Path.cwd().resolve()
    if out_dir.name in ("", "..") or out_dir.resolve() in (here, *here.parents):  # Path(".").name is ""
        raise UserError(f"--out {out_dir}: the current folder or one above it, which the export cannot replace; "
                        "name a folder for it, e.g. best")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder")
    # The export is staged beside out_dir, in its parent: that (or what of it exists) must take a new folder.
    parent = next(folder for folder in out_dir.absolute().parents if folder.exists())  # parents[0] is .parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out_dir}: cannot make a folder in {parent}")
    if not out_dir.is_dir():
        return
    present = {path.name for path in out_dir.iterdir()}
    others = sorted(present - set(EXPORT_FILES))
    if others:  # --force replaces the folder whole, so it must not hold anything of the user's
        raise UserError(f"--out {out_dir}: holds other files ({listed(others, 3)}); choose a new folder")
    if present and not force:
        raise UserError(f"--out {out_dir}: holds an earlier export{_made_by(out_dir)}; pass --force to replace it")


def _made_by(out_dir: Path) -> str:
    """" (of study S, trial N)" as the export's params.json says, so that --force is not given blindly; else ""."""
    try:
        params = json.loads((out_dir / "params.json").read_text())
        return f" (of study {params['study']!r}, trial {params['trial']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def default_out_dir(study_name: str) -> Path:
    """export-best's folder without --out: studies/STUDY-NAME/best, one per study (two studies of an architecture
    must not replace each other's export); a study name that is no plain folder name needs --out."""
    if not re.fullmatch(r"\w[\w.+-]*", study_name):
        raise UserError(f"study name {study_name!r} is not a plain folder name: name the export's folder with --out")
    return Path("studies") / study_name / "best"


def staging_prefixes(out_dir: Path) -> tuple[str, str]:
    """The names' beginnings of the folders beside out_dir that an export is written in, and that an earlier one
    is moved into while the new one takes its place."""
    return f".{out_dir.name}.new-", f".{out_dir.name}.old-"


@contextlib.contextmanager
def staged_out_dir(out_dir: Path, force: bool) -> Iterator[Path]:
    """A temporary folder beside out_dir to write into; on success it replaces out_dir in two renames,
    so an interruption leaves the old export or the new one, never a mix of both."""
    check_out_dir(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    new_prefix, old_prefix = staging_prefixes(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=new_prefix, dir=out_dir.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it private; an export folder is an ordinary one
        # Both renames or neither: a Ctrl-C between them removed the new export and left the old one hidden.
        with signals_ignored():
            old = None
            if out_dir.is_dir() and any(out_dir.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=old_prefix, dir=out_dir.parent))
                os.replace(out_dir, old / out_dir.name)
            os.replace(staging, out_dir)  # rename(2) also replaces an empty folder
            if old is not None:
                shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def current_umask() -> int:
    """This process's file mode creation mask."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary file beside path to write; renamed onto path when the block succeeds, removed otherwise, so an
    interrupted or failed write (a full disk) leaves what was at path before, whole, and no half-written file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes it private; a report is an ordinary file
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def leftovers(folder: Path, *prefixes: str) -> list[Path]:
    """Hidden staging folders (named prefix...) in folder that a killed run left (SIGKILL, a power cut; an error or
    Ctrl-C removes its own). A live run's own looks the same, so they are named to the user, not removed."""
    return sorted(path for prefix in prefixes for path in folder.glob(f"{glob.escape(prefix)}*") if path.is_dir())


def warn_leftovers(folder: Path, command: str, *prefixes: str) -> None:
    """Name on stderr the staging folders in folder (`leftovers`) that killed runs of command left."""
    found = leftovers(folder, *prefixes)
    if found:
        one = len(found) == 1
        Console().warn(f"note: {', '.join(map(str, found))} {'was' if one else 'were'} left by an interrupted "
                       f"{command} (killed, or still running elsewhere); remove {'it' if one else 'them'} once no "
                       "such run is going on")


@contextlib.contextmanager
def staged_in_folder(out: Path, replace: bool, last: str, prefix: str) -> Iterator[Path]:
    """A hidden folder (named prefix...) inside out to write into; on success its entries move into out (replacing
    files of the same name only with `replace`; the one named `last` moves last, and always replaces), on an error
    or Ctrl-C it is removed, with the folders this made: no half-prepared data is left."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: a file, not a folder")
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # deepest first
    out.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out))
    except OSError as exc:  # named as --out, not as the hidden folder it could not make there
        raise DataError(f"--out {out}: cannot write there ({exc.strerror})") from None
    try:
        yield staging
        with signals_ignored():  # all moved or none: an interrupt between two moves left a folder half replaced
            moved: list[Path] = []
            try:
                for entry in sorted(staging.iterdir(), key=lambda entry: (entry.name == last, entry.name)):
                    _move_in(entry, out / entry.name, replace or entry.name == last)
                    moved.append(entry)
            except FileExistsError as exc:  # all or none here too: what moved in goes back (the finally removes it)
                for entry in moved:
                    os.replace(out / entry.name, entry)
                raise DataError(f"{exc.filename} appeared while this ran (another data prepare into {out}?); this "
                                "run wrote nothing") from None
    finally:
        with signals_ignored():  # a second Ctrl-C must not leave the staging folder behind
            shutil.rmtree(staging, ignore_errors=True)
            for folder in made:  # left empty by a failure
                if not any(folder.iterdir()):
                    folder.rmdir()


def _move_in(entry: Path, target: Path, replace: bool) -> None:
    """Move a prepared file or folder to target; without `replace`, raise FileExistsError for a target that
    appeared meanwhile (two prepares into one folder both found it free: the second replaced the first's files
    without --force)."""
    if not replace:
        try:  # claim the name first: rename(2) would replace a file, or an empty folder
            if entry.is_dir():
                target.mkdir()
            else:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError as exc:
            exc.filename = str(target)
            raise
    os.replace(entry, target)
