"""The hpsearch command line: thin typer commands over the data, study, export and report modules."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

import spaces
from search.cli_options import (
    Arch,
    Backend,
    ConfirmBackend,
    DataDir,
    ImageSize,
    MaskedGroup,
    Quiet,
    RetrainBackend,
    Storage,
    StudyDataDir,
    StudyName,
    resumed_options,
    study_for_training,
    user_errors,
)
from search.cli_results import report, score, trials_table
from search.config import DEFAULT_STORAGE, StudyConfig
from search.console import Console
from search.errors import UserError, require_positive

# Plain help (rich_markup_mode None): rich's boxes squeezed the help text of an 80-column terminal into a
# narrow column and cut defaults short ("sqlite:///studies/h…").
app = typer.Typer(help="Find the best hyperparameters for Keras image classifiers with Optuna.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None,
                  cls=MaskedGroup)
data_app = typer.Typer(help="Prepare the built-in Fashion-MNIST data.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
def data_prepare(
    labels: Annotated[str, typer.Option(help="Label set: fashion5 (5 classes) or fashion10.")] = "fashion5",
    source: Annotated[Optional[Path], typer.Option(help="Folder with the Fashion-MNIST *-idx*-ubyte.gz files "
                                                   "(default: /usr/share/datasets/fashion-mnist).")] = None,
    out: Annotated[Path, typer.Option(help="Where to write train.csv, testX.csv, testY.csv.")] = Path("data"),
    fmt: Annotated[str, typer.Option("--format", help="csv (train.csv, testX.csv, testY.csv) or folders "
                                     "(train/<class>/*.png, test/*.png, testY.csv).")] = "csv",
    force: Annotated[bool, typer.Option(help="Overwrite existing train.csv, testX.csv, testY.csv (CSV format; an "
                                        "image tree is never replaced).")] = False,
) -> None:
    """Write Fashion-MNIST as Kaggle-format CSVs, or as PNG image folders (--format folders)."""
    from search.data import PREPARE_STAGING, prepare
    from search.export_files import warn_leftovers

    # SIGTERM (`timeout`, kill) as Ctrl-C (user_errors): the staging folder is removed.
    with user_errors("nothing was written; run the same command again"):
        for path in prepare(source, out, labels, fmt, force=force):
            Console().result(f"wrote {path}")
    warn_leftovers(out, "data prepare", PREPARE_STAGING)


@app.command(short_help="Run or resume a study of ARCH up to --trials finished trials.")
def study(
    arch: Arch,
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold; a rerun adds only "
                                        "the missing ones.")] = StudyConfig.trials,
    data: DataDir = None,
    image_size: ImageSize = None,
    epochs: Annotated[int, typer.Option(help="Epochs per trial (the pruner may stop a trial earlier).")]
    = StudyConfig.epochs,
    storage: Storage = DEFAULT_STORAGE,
    study_name: StudyName = None,
    sampler: Annotated[str, typer.Option(help="tpe or random.")] = StudyConfig.sampler,
    objective: Annotated[Optional[str], typer.Option(
        help="accuracy (validation accuracy), or accuracy-time (accuracy up and training seconds down, epoch 1 at "
        "epoch 2's pace so that compiling does not count: a Pareto front). Default: a resumed study's own, else "
        "accuracy.", show_default=False)] = None,
    pruner: Annotated[Optional[str], typer.Option(help="successive-halving (the default for accuracy), "
                                                  "hyperband, median, dominance (the default for "
                                                  "accuracy-time: stop a trial that finished trials beat on both) "
                                                  "or none.")] = StudyConfig.pruner,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and of every model's initialization (0 to "
                                      "2147483647).")] = StudyConfig.seed,
    timeout: Annotated[Optional[float], typer.Option(help="Stop starting trials this many seconds after the "
                                                     "command started (its start-up and every worker included).")
                       ] = None,
    subset: Annotated[Optional[int], typer.Option(help="Train on the first N training images "
                                                  "(and N/4 validation images) for quick runs.")] = None,
    enqueue_seed_models: Annotated[bool, typer.Option(help="Run the notebook's models of ARCH first.")] = False,
    warm_start: Annotated[bool, typer.Option("--warm-start/--no-warm-start", help="Start a new study with ARCH's "
                                             "default configuration (unless --enqueue-seed-models).")] = True,
    shuffle: Annotated[bool, typer.Option(help="Shuffle training data each epoch (the notebook did not).")] = False,
    backend: Backend = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes sharing the study (any storage; "
                                                "PostgreSQL across machines). Default: 1, or with JAX on a GPU one "
                                                "per 8 GiB (plus the data) of 90% of its memory, up to 4.",
                                                show_default=False)]
    = StudyConfig.workers,
    max_failures: Annotated[int, typer.Option(help="Stop once this many trials failed in this run (all its "
                                              "workers together).")]
    = StudyConfig.max_failures,
    device_loop: Annotated[Optional[bool], typer.Option(
        "--device-loop/--no-device-loop", help="JAX only: train each epoch as one compiled on-device loop "
        "(default: on where JAX trains on a GPU; on CPU it measured 5-16x slower than model.fit).")] = None,
    precision: Annotated[str, typer.Option(help="float32, or bfloat16: layers compute in bfloat16, weights stay "
                                           "float32. On GPUs with bfloat16 units faster epochs (1.4x on an H200) "
                                           "but slower compiles: for long trials. No gain on CPUs.")]
    = StudyConfig.precision,
    heartbeat: Annotated[Optional[int], typer.Option(
        help="Seconds between a worker's heartbeats (SQLite/PostgreSQL); a trial silent for 3 beats is failed and "
        f"retried once. Default: a resumed study's, else {StudyConfig.heartbeat_seconds}.", show_default=False)]
    = None,
    fail_orphans: Annotated[bool, typer.Option(help="First mark failed the RUNNING trials whose worker is gone "
                                               "(left by a killed worker on a journal storage).")] = False,
    levers: Annotated[Optional[bool], typer.Option(
        "--levers/--no-levers", help="Search the accuracy levers too: augmentation (translation, horizontal flip, "
        "random erasing), label smoothing, weight decay, cosine and one-cycle learning-rate schedules. Default: a "
        "resumed study's choice, else on.", show_default=False)] = None,
    quiet: Quiet = False,
) -> None:
    """Run (or resume) an Optuna study of ARCH until it holds --trials finished trials."""
    from search.runner import run_study

    with user_errors():
        settings = resumed_options(storage, study_name or arch, quiet, data_dir=data, subset=subset,
                                   image_size=image_size, levers=levers, heartbeat_seconds=heartbeat,
                                   objective=objective)
        config = StudyConfig(arch=arch, trials=trials, epochs=epochs, storage=storage, study_name=study_name,
                             sampler=sampler, pruner=pruner, seed=seed, timeout=timeout,
                             enqueue_seed_models=enqueue_seed_models, warm_start=warm_start, shuffle=shuffle,
                             backend=backend, workers=workers, max_failures=max_failures, quiet=quiet,
                             device_loop=device_loop, precision=precision, fail_orphans=fail_orphans, **settings)
        code = run_study(config)
    raise typer.Exit(code)


@app.command(short_help="Replay the notebook's models of ARCH and compare their results.")
def replay(
    arch: Arch,
    models: Annotated[Optional[str], typer.Option(help="Comma-separated notebook models, e.g. model1,model7 "
                                                  "(default: all of ARCH's).")] = None,
    epochs_scale: Annotated[float, typer.Option(help="Train each model for this fraction of its notebook "
                                                "epochs (0 < F <= 1, at least one epoch).")] = 1.0,
    subset: Annotated[Optional[int], typer.Option(help="Train on the first N training images "
                                                  "(and N/4 validation images).")] = None,
    data: DataDir = None,
    storage: Storage = DEFAULT_STORAGE,
    study_name: Annotated[Optional[str], typer.Option("--study-name", help="Study name "
                                                      "(default: ARCH-notebook).")] = None,
    backend: Backend = None,
    quiet: Quiet = False,
) -> None:
    """Train the notebook's models of ARCH with their own settings and epochs; compare with what it reported."""
    from search.masking import display_url
    from search.runtime import use_backend

    with user_errors("finished models are saved; run the same command again to resume"):
        spaces.require(arch)
        use_backend(backend)  # Keras on the chosen backend, before the replay trains with it
        from search.replay import choose_models, replay_config, replay_name, replay_table, unreplayed
        from search.replay import replay as run_replay
        from spaces._notebook import NOTEBOOK_SETUP

        chosen = choose_models(arch, models)
        settings = resumed_options(storage, study_name or replay_name(arch), quiet, data_dir=data, subset=subset)
        config = replay_config(arch, chosen, epochs_scale, study_name, storage=storage, backend=backend, quiet=quiet,
                               **settings)
        study_obj = run_replay(config, chosen, epochs_scale)
    console = Console(quiet)
    console.result(f"study {study_obj.study_name!r} in {display_url(storage)}: the notebook's models measured here "
                   f"vs as the notebook reported them ({NOTEBOOK_SETUP})")
    console.result(replay_table(study_obj, chosen).to_string(index=False, na_rep="-"))
    if missing := unreplayed(study_obj, chosen):  # a model that failed: its row is as blank as one never run
        console.warn(f"not replayed: {'; '.join(missing)}; run the same command again to retry")
        raise typer.Exit(1)


@app.command(hidden=True)
def worker() -> None:
    """Run one worker's share of a study (started by `study --workers K`; its settings arrive on stdin)."""
    # SIGINT is how the parent stops this worker: honour it from the first line, even when inherited as ignored
    # (a parent started as a background job of a non-interactive shell passes SIGINT on ignored); set later,
    # after Keras' import, a SIGINT sent meanwhile was lost and the worker ran its whole share.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from search.runtime import use_backend
    from search.workers import read_share, worker_main

    # Not argv: the storage URL may hold a password, and `ps` shows argv.
    payload = sys.stdin.readline()
    if not payload:  # the parent was stopped before it sent them (its interrupt says so): nothing to run
        raise typer.Exit(130)
    config, quota, index = read_share(payload)
    # Its lines say which worker it is where there are several; what an interrupt leaves, the parent says once.
    Console.worker = index if config.worker_count > 1 else None
    with user_errors("", Console()):
        use_backend(config.backend)
        raise typer.Exit(worker_main(config, quota))


@app.command("export-best", short_help="Retrain the best trial: model, submission.csv, report.")
def export_best(
    arch: Arch,
    storage: Storage = DEFAULT_STORAGE,
    study_name: StudyName = None,
    data: StudyDataDir = None,
    image_size: ImageSize = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: studies/STUDY-NAME/best).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs to retrain (default: the best trial's best "
                                                  "epoch).")] = None,
    full_train: Annotated[bool, typer.Option(help="Retrain on all labelled rows (validation included).")] = False,
    backend: RetrainBackend = None,
    force: Annotated[bool, typer.Option(help="Replace an earlier export in the output folder.")] = False,
    pick: Annotated[Optional[tuple[str, float]], typer.Option(
        help="Accuracy-time studies: `--pick fastest-within X` exports the fastest trial of the Pareto front within "
        "X points of accuracy of its most accurate (default: the most accurate).")] = None,
    ensemble: Annotated[int, typer.Option(help="Average the softmax of the K best trials (confirmed ones first), "
                                          "each retrained.")] = 1,
    seeds: Annotated[int, typer.Option(help="Retrain each exported trial with S seeds (its own, then the next ones, "
                                       "as `confirm` does) and average their softmax too: a seed ensemble.")] = 1,
    mirror: Annotated[Optional[bool], typer.Option(
        "--mirror/--no-mirror", help="Predict each image as the mean of its and its mirror image's softmax "
        "(test-time augmentation; default: on when the exported trials trained on randomly mirrored images).")] = None,
    quiet: Quiet = False,
) -> None:
    """Retrain the best trial and write submission.csv, model.keras, params.json, history.csv, report.html."""
    from search.export_files import check_out_dir, default_out_dir, staging_prefixes, warn_leftovers

    with user_errors("nothing was exported (an earlier export is left as it was)"):
        out_dir = out or default_out_dir(study_name or arch)
        require_positive(("--epochs", epochs), ("--ensemble", ensemble), ("--seeds", seeds))
        if pick is not None and (pick[0] != "fastest-within" or not pick[1] >= 0):
            raise UserError(f"--pick {pick[0]} {pick[1]:g}: expected `--pick fastest-within X` with X >= 0 points")
        if pick is not None and ensemble > 1:  # the other members, the most accurate, undid the fast pick
            raise UserError("--pick exports one fast trial and --ensemble averages the most accurate ones; use one")
        # The study first: a storage that is down or empty is the problem to name, not an earlier export.
        study_obj = study_for_training(arch, storage, study_name, backend)
        check_out_dir(out_dir, force)  # before hours of retraining, not after
        from search.export import export_best as run_export

        # SIGTERM (`timeout`, kill) as Ctrl-C (user_errors): the half-written staging folder is removed.
        result = run_export(study_obj, data, out_dir, epochs=epochs, full_train=full_train, quiet=quiet,
                            image_size=image_size, force=force, within=pick[1] if pick else None,
                            ensemble=ensemble, seeds=seeds, mirror=mirror)
    console = Console(quiet)
    warn_leftovers(out_dir.parent, "export-best", *staging_prefixes(out_dir))
    console.result(f"validation accuracy of the retrained model: {result.val_accuracy:.4f}"
                   + (" (the validation rows were trained on too: --full-train)" if full_train else ""))
    for path in result.files:
        console.result(f"wrote {path}")


@app.command(short_help="Retrain the best trials with more seeds; rank them by the mean.")
def confirm(
    arch: Arch,
    top: Annotated[int, typer.Option(help="How many of the best complete trials to confirm.")] = 3,
    seeds: Annotated[int, typer.Option(help="Runs per configuration, its original run included.")] = 3,
    storage: Storage = DEFAULT_STORAGE,
    study_name: StudyName = None,
    data: StudyDataDir = None,
    image_size: ImageSize = None,
    backend: ConfirmBackend = None,
    quiet: Quiet = False,
) -> None:
    """Retrain the best configurations with more seeds; export-best then picks the best mean."""
    with user_errors("finished seed runs are saved; run the same command again to resume"):
        require_positive(("--top", top), ("--seeds", seeds))
        study_obj = study_for_training(arch, storage, study_name, backend, writes=True)  # it stores the scores
        from search.confirm import confirm as run_confirm
        from search.export import study_data
        from search.storage import storage_loss_said
        from search.winners import require_winner

        require_winner(study_obj)  # a clear error when nothing is complete yet
        console = Console(quiet)
        with storage_loss_said(storage):  # it writes a score after every run
            table = run_confirm(study_obj, study_data(study_obj, data, image_size), top, seeds, console)
    console.result(table.to_string(index=False, na_rep="-"))  # one seed: no spread to show


# The commands that only read studies and files (search.cli_results), after the ones that train.
app.command("trials", short_help="Print a study's trials: state, value, seconds, params.")(trials_table)
app.command(short_help="Compare every study in a storage: table, CSV and HTML.")(report)
app.command(short_help="Accuracy and confusion matrix of a submission against labels.")(score)


def main() -> None:
    """Console entry point."""
    app(prog_name="hpsearch")


if __name__ == "__main__":
    main()
