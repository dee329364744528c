"""The hpsearch commands that only read studies and files: trials, report and score (registered in search.cli)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import spaces
from search.cli_options import Arch, Storage, StudyName, user_errors
from search.config import DEFAULT_STORAGE
from search.console import Console
from search.errors import UserError


def trials_table(arch: Arch, storage: Storage = DEFAULT_STORAGE, study_name: StudyName = None) -> None:
    """Print a study's trials as a table: state, value, seconds, parameters."""
    from search.records import StudyRecord, require_arch
    from search.storage import load_study, open_storage
    from search.tables import trials_frame

    with user_errors(""):
        opened = open_storage(storage, readonly=True)
        try:
            found = load_study(opened, study_name or arch)
        except UserError:
            spaces.require(arch)  # a mistyped architecture is said as one, not as "no study 'cnnn'"
            raise
        require_arch(found, arch)
        frame = trials_frame(found)
    console, classes = Console(), StudyRecord.of(found).class_names
    if classes:  # on stderr, so stdout stays one table
        console.say(f"classes (labels 0..{len(classes) - 1}): {', '.join(classes)}")
    console.result(frame.to_string(index=False) if len(frame) else "no trials yet")


def _is_report(path: Path) -> bool:
    """Whether path is a file `report` wrote: its CSV (header "study,arch,...") or its HTML (title "hpsearch...")."""
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return head.startswith(b"study,arch,") or b"<title>hpsearch: comparison" in head


def report(
    storage: Storage = DEFAULT_STORAGE,
    out: Annotated[Path, typer.Option(help="HTML file; a CSV of the table is written beside it.")]
    = Path("studies/report.html"),
    force: Annotated[bool, typer.Option(help="Replace an existing report (the HTML file and its CSV).")] = False,
) -> None:
    """Compare every architecture study in a storage: table, CSV and HTML with curves and timings."""
    from search.masking import display_url
    from search.storage import load_all, open_storage

    with user_errors(""):
        every_study = load_all(open_storage(storage, readonly=True))  # a bad storage is said first
        if out.name in ("", "..") or out.is_dir():  # Path(".").name is ""
            raise UserError(f"--out {out}: a folder; name the HTML file (e.g. {out / 'report.html'})")
        if not out.parent.is_dir() and out.parent != Path("studies"):  # a typo made a folder; only studies/ is made
            raise UserError(f"--out {out}: folder {out.parent} does not exist; create it first")
        if out.with_suffix(".csv") == out:  # the CSV would be written, then replaced by the HTML
            raise UserError(f"--out {out}: name the HTML file (e.g. report.html); its CSV is written beside it")
        existing = [path for path in (out, out.with_suffix(".csv")) if path.exists()]
        if existing and not force:  # perhaps not a report at all: --out may name any file
            raise UserError(f"{existing[0]} exists; pass --force to replace it (or choose another --out)")
        foreign = [path for path in existing if not _is_report(path)]
        if foreign:  # e.g. --out data/train.html would replace the training data's train.csv
            raise UserError(f"{foreign[0]} is not an hpsearch report, which is all --force replaces; "
                            "choose another --out")
        from search.notebook import glance_lines, replay_studies
        from search.report import arch_studies, write_report

        studies, replays = arch_studies(every_study), replay_studies(every_study)
        if not studies and not replays:
            raise UserError(f"no hpsearch studies in {display_url(storage)}; run `hpsearch study ARCH` first")
        table, notebook, csv_path, html_path = write_report(studies, out, replays)
    # Params and class names are long: they are in the CSV and the HTML.
    console = Console()
    console.result(table.drop(columns=["best_params", "classes"], errors="ignore").to_string(index=False, na_rep="")
                   if len(table) else "no search studies yet; only the notebook's replays")
    if len(notebook):  # none where no study ran on Fashion-MNIST
        console.result("\nThe notebook at a glance (its best reported model, its replay here, the search's best):")
        console.result(notebook.drop(columns=["search_vs_notebook"]).to_string(index=False, na_rep="-"))
        console.result("\n".join(glance_lines(notebook)))
    console.result(f"wrote {csv_path}\nwrote {html_path}")


def score(
    submission: Annotated[Path, typer.Argument(help="A submission.csv (Id,Label).")],
    labels: Annotated[Path, typer.Option(help="The true labels (Id,Label), e.g. data/testY.csv.")]
    = Path("data/testY.csv"),
) -> None:
    """Accuracy, per-class accuracy and confusion matrix of a submission against true labels."""
    from search.score import score as run_score

    with user_errors(""):
        result = run_score(submission, labels)
    console = Console()
    console.result(f"accuracy: {result.accuracy:.4f} on {int(result.per_class['support'].sum())} rows")
    console.result(result.per_class.to_string(index=False))
    console.result("confusion matrix (rows: true, columns: predicted)")
    console.result(result.confusion.to_string())
