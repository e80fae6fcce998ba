"""Command line: ``python -m dq <verb>``.

Exit codes (stable, see :mod:`dq.errors`): 0 published / success, 1 a quality
gate failed (nothing published), 2 bad input or usage (nothing loaded, nothing
published), 3 an environment or tool failure (nothing published), 143 stopped
by SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path

from dq import config, pipeline, preflight


def _cmd_run(args: argparse.Namespace) -> int:
    from dq.summary import render

    settings = config.load()
    if args.target:
        settings = dataclasses.replace(settings, target=args.target)
    try:
        accepted = [pipeline.acceptance(what, args.reason) for what in args.accept or []]
    except pipeline.BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return pipeline.EXIT_INPUT
    run = pipeline.run_all(settings, run_id=args.run_id, acceptances=accepted)
    print(render(run))
    return run.exit_code if run.exit_code is not None else pipeline.EXIT_ENVIRONMENT


@contextlib.contextmanager
def _inspection(settings, run_id: str | None):
    """A build to look at: run ``run_id``'s own build if given, else a throwaway
    build holding a copy of the published warehouse (nothing published is opened
    for writing, and the copy is removed afterwards)."""
    import shutil

    from dq import build, generate
    from dq.record import Run, check_run_id, new_run_id

    if settings.target != "sqlite":
        raise pipeline.BadInput(
            "inspecting a build or the published warehouse reads SQLite files; on"
            f" {settings.target} every `dq run` validates its own build before publishing"
        )

    if run_id:
        found = settings.build(check_run_id(run_id))
        if not found.db.exists():
            raise pipeline.BadInput(f"no build warehouse at {found.db} (kept only for failed runs)")
        yield Run(settings=settings, run_id=run_id)
        return
    if not settings.published_db.exists():
        raise pipeline.BadInput(
            f"no published warehouse at {settings.published_db}; run `python -m dq run` first"
        )
    run = Run(settings=settings, run_id=f"inspect-{new_run_id()}")
    workspace = build.create(settings, run.run_id)
    try:
        build.snapshot_seeds(
            settings.seeds_dir, workspace, [p.name for p in settings.seeds_dir.iterdir()]
        )
        generate.for_build(workspace)
        shutil.copyfile(settings.published_db, workspace.db)
        yield run
    finally:
        shutil.rmtree(workspace.root, ignore_errors=True)


def _cmd_sync(args: argparse.Namespace) -> int:
    from dq import generate

    settings = config.load()
    written = generate.sync(settings)
    folder = settings.dbt_project_dir / generate.GENERATED
    print(f"{folder}: {len(written)} files from {len(written) // 4} source declarations")
    return pipeline.EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from dq import validate

    settings = config.load()
    ok = True
    try:
        with _inspection(settings, args.run_id) as run:
            for layer in args.layers:
                report = validate.run_checkpoint(settings, run.build, layer, run.run_id)
                for s in report.suites:
                    flag = "ok" if s.success else "FAILED"
                    print(f"{layer:<12} {s.suite:<18} {s.passed}/{s.evaluated} {flag}")
                    for message in s.failed_critical:
                        print(f"    critical: {message}")
                ok &= report.success
    except pipeline.PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"GX Data Docs: {settings.data_docs_dir / 'index.html'}")
    return pipeline.EXIT_OK if ok else pipeline.EXIT_GATE


def _cmd_preflight(args: argparse.Namespace) -> int:
    settings = config.load()
    try:
        sizes = preflight.check_all(settings.seeds_dir)
    except preflight.BadInput as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return pipeline.EXIT_INPUT
    for name, size in sizes.items():
        print(f"{name:<16} ok ({size} bytes)")
    return pipeline.EXIT_OK


def _cmd_docs(args: argparse.Namespace) -> int:
    from dq.steps import generate_docs

    settings = config.load()
    # The trends page comes from the history, not from a warehouse: refreshed first,
    # also when there is nothing published to document.
    trends = pipeline.render_trends(settings)
    try:
        with _inspection(settings, args.run_id) as run:
            static = generate_docs(run)
    except pipeline.PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"dbt docs:       {static}")
    print(f"GX Data Docs:   {settings.data_docs_dir / 'index.html'}")
    if trends:
        print(f"Quality trends: {settings.trends_dir / 'index.html'}")
    else:
        print("Quality trends: not updated (see the warning above)", file=sys.stderr)
        return pipeline.EXIT_ENVIRONMENT
    return pipeline.EXIT_OK


def _cmd_data(args: argparse.Namespace) -> int:
    from dq.data import OutputExists, generate

    try:
        counts = generate(args.out, years=args.years, seed=args.seed, overwrite=args.overwrite)
    except OutputExists as exc:
        print(exc, file=sys.stderr)
        return pipeline.EXIT_INPUT
    for name, n in counts.items():
        print(f"{name:<16} {n:>8} rows")
    return pipeline.EXIT_OK


def _cmd_add_source(args: argparse.Namespace) -> int:
    """Profile a CSV and declare it as a source (docs/add-source.md)."""
    import yaml

    from dq import profile as profiler
    from dq.errors import BadInput

    settings = config.load()
    if args.write and not args.update:
        raise BadInput("--write goes with --update (a new source is written unless --dry-run)")
    if args.write and args.dry_run:
        raise BadInput("--dry-run writes nothing: leave out --write")
    seeds = settings.seeds_dir
    noun = profiler.noun_for(args.path, args.name)
    declaration_path, csv_path = seeds / f"{noun}.yml", seeds / f"raw_{noun}.csv"
    old_text, previous = None, None
    if args.update:
        if not declaration_path.exists():
            raise BadInput(
                f"no source {noun!r} ({declaration_path} is missing): leave out --update"
            )
        old_text = declaration_path.read_text(encoding="utf-8")
        previous = yaml.safe_load(old_text)
        if not isinstance(previous, dict):
            raise BadInput(f"{declaration_path} is not a declaration (a mapping)")
    else:
        existing = [str(p) for p in (declaration_path, csv_path) if p.exists()]
        if existing:
            raise BadInput(
                f"source {noun!r} exists ({', '.join(existing)}): choose another --name,"
                " or propose a new declaration with --update"
            )
    result = profiler.profile(args.path, name=noun, seeds_dir=seeds, previous=previous)
    text = profiler.render(result.declaration, noun=noun, rows=result.rows)

    def clean(path_or_text) -> str:  # CSV text and paths, safe for a terminal
        if isinstance(path_or_text, Path):
            with contextlib.suppress(ValueError):
                path_or_text = path_or_text.resolve().relative_to(Path.cwd())
        return profiler.printable(path_or_text)

    columns = result.declaration["columns"]
    key = result.declaration.get("key")
    keys = {key} if isinstance(key, str) else set(key or [])
    print(f"{clean(args.path)}: {result.rows} rows, {len(columns)} columns")
    for header, spec in columns.items():
        name = (spec or {}).get("name", header)
        what = profiler.describe(spec) + (", key" if header in keys else "")
        print(f"  {clean(header)[:28]:<28} {name[:28]:<28} {clean(what)}")
    if result.notes:
        print("unsure:")
        for note in result.notes:
            print(f"  - {clean(note)}")
    if args.dry_run:
        print(f"\n--- {clean(declaration_path)} (not written: --dry-run)")
        print(text, end="")
        return pipeline.EXIT_OK
    if args.update:
        changes = profiler.diff(old_text, text, clean(declaration_path))
        print(f"\n{changes}" if changes else f"\n{clean(declaration_path)}: no change proposed")
        if not args.write:
            print("nothing written: add --write to write this declaration and copy the file")
            return pipeline.EXIT_OK
    _install(settings, Path(args.path), csv_path, declaration_path, text)
    print(f"\nwrote {clean(declaration_path)}")
    print(f"copied {clean(args.path)} -> {clean(csv_path)}")
    print("next: python -m dq run")
    return pipeline.EXIT_OK


def _install(settings, source: Path, csv_path: Path, declaration_path: Path, text: str) -> None:
    """Write the declaration and copy the file (each replaced atomically), then
    regenerate the dbt files; if that fails, put both files back as they were."""
    import os
    import shutil
    import tempfile

    from dq.generate import sync

    saved = {p: p.read_bytes() if p.exists() else None for p in (csv_path, declaration_path)}

    def replace(path: Path, write) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    try:
        if not (csv_path.exists() and os.path.samefile(source, csv_path)):
            replace(csv_path, lambda tmp: shutil.copyfile(source, tmp))
        replace(declaration_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        sync(settings)
    except BaseException:
        for path, data in saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        raise


def _cmd_model(args: argparse.Namespace) -> int:
    """Train a candidate on the audited published warehouse and gate it."""
    from dq import model
    from dq.notify import notify_stage

    settings = config.load()
    try:
        candidate = model.run_stage(settings, args.config)
    except (pipeline.PipelineError, OSError) as exc:
        candidate = getattr(exc, "candidate", None)
        if candidate is not None:
            print(model.describe(candidate))
        print(f"error: {exc}", file=sys.stderr)
        # Failures only: a passing candidate changes nothing until deploy, which notifies.
        notify_stage("model", False, str(exc))
        return getattr(exc, "exit_code", pipeline.EXIT_ENVIRONMENT)
    print(model.describe(candidate))
    return pipeline.EXIT_OK


def _cmd_predict(args: argparse.Namespace) -> int:
    """Score the published orders with the production model."""
    from dq import model

    settings = config.load()
    try:
        path = model.predict(settings)
    except (pipeline.PipelineError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", pipeline.EXIT_ENVIRONMENT)
    print(f"Predictions: {path}")
    print(f"             {path.parent / 'predictions.db'} (table {model.PREDICTIONS})")
    return pipeline.EXIT_OK


def _cmd_deploy(args: argparse.Namespace) -> int:
    """Promote the gated model and its data into production (dq.release)."""
    from dq import release

    settings = config.load()
    try:
        done = release.deploy(settings)
    except pipeline.PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if done.changed:
        print(f"Deployed {done.describe()}")
    else:
        print(f"Nothing to deploy: {done.describe()} is already in force (same model and data)")
    print(f"In force: {settings.production / release.CURRENT} -> {done.path}")
    return pipeline.EXIT_OK


def _cmd_rollback(args: argparse.Namespace) -> int:
    """Put the release before the current one back into force (dq.release)."""
    from dq import release

    settings = config.load()
    try:
        done = release.rollback(settings)
    except pipeline.PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"Rolled back to {done.describe()}")
    print(f"In force: {settings.production / release.CURRENT} -> {done.path}")
    return pipeline.EXIT_OK


def _cmd_releases(args: argparse.Namespace) -> int:
    """List the releases kept in production, the one in force marked."""
    from dq import release

    settings = config.load()
    try:
        in_force = release.current(settings)
        found = release.releases(settings)
    except pipeline.PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.current:
        print(in_force.release_id if in_force else "none")
        return pipeline.EXIT_OK
    if not found:
        print(f"no releases in {settings.production}")
    for item in found:
        mark = "*" if in_force and item.release_id == in_force.release_id else " "
        print(f"{mark} {item.describe()}")
    return pipeline.EXIT_OK


def _cmd_notify(args: argparse.Namespace) -> int:
    """Send one stage's outcome to the configured channels (CI's post steps)."""
    from dq.notify import notify_stage

    sent = notify_stage(args.stage, args.outcome == "success", args.message)
    print(f"notified: {', '.join(sent) or 'nothing (no channel configured or wanted)'}")
    return pipeline.EXIT_OK  # a notification never fails the build


def _cmd_serve(args: argparse.Namespace) -> int:
    from dq import serve

    return serve.serve(args.port)


def _cmd_airflow(args: argparse.Namespace) -> int:
    from dq import airflow_local

    return airflow_local.command(args.action, args.home, args.port, args.distributed)


def _cmd_postgres(args: argparse.Namespace) -> int:
    from dq import pgcluster

    return pgcluster.command(args.action)


def _run_id(value: str) -> str:
    from dq.record import check_run_id

    try:
        return check_run_id(value)
    except pipeline.BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _years(text: str) -> float:
    """``--years``: a positive number of simulated years, at most MAX_YEARS."""
    from dq.data import MAX_YEARS

    try:
        years = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < years <= MAX_YEARS:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_YEARS}, not {text}")
    return years


def _release_verbs(verb) -> None:
    """The CI/CD verbs: deploy, rollback, releases, notify."""
    p = verb(
        "deploy",
        "promote the gated model candidate and the published warehouse, dbt docs and"
        " GX Data Docs it was trained on into production (atomically)",
    )
    p.set_defaults(func=_cmd_deploy)

    p = verb("rollback", "put the release before the current one back into force (atomically)")
    p.set_defaults(func=_cmd_rollback)

    p = verb("releases", "list the releases kept in production; * marks the one in force")
    p.add_argument(
        "--current", action="store_true", help="print only the id of the release in force"
    )
    p.set_defaults(func=_cmd_releases)

    p = verb("notify", "send a CI/CD stage's outcome to the configured channels (never fails)")
    p.add_argument("stage", help="the stage or pipeline it is about, e.g. ci, lint, deploy")
    p.add_argument("outcome", choices=["success", "failure"], help="success or failure")
    p.add_argument("message", help="what happened: the release, or the failed stage and why")
    p.set_defaults(func=_cmd_notify)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb; each argument has a help text (a test walks them)."""
    parser = argparse.ArgumentParser(
        prog="python -m dq",
        description="Jaffle Shop data-quality pipeline: dbt seeds -> models -> GX -> publish.",
        epilog="Exit codes: 0 published/success, 1 quality gate failed, 2 bad input or usage,"
        " 3 environment or tool failure, 143 terminated.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    # -v after the verb too: SUPPRESS keeps a verb's parser from resetting a -v
    # given before the verb to False.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log every step"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=help, description=help, parents=[common])

    run_id_help = "use this run id instead of a time-based one (stamped on GX results)"

    p = verb(
        "run", "the whole pipeline: preflight, seed, validate, transform, validate, publish, docs"
    )
    p.add_argument("--run-id", type=_run_id, help=run_id_help)
    p.add_argument(
        "--accept",
        action="append",
        choices=sorted(pipeline.ACCEPTABLE),
        help="accept, for this run only, a finding that would stop publishing: "
        + "; ".join(f"{k}: {v}" for k, v in sorted(pipeline.ACCEPTABLE.items())),
    )
    p.add_argument("--reason", help="why (required with --accept; kept in the run record)")
    p.add_argument(
        "--target",
        choices=config.TARGETS,
        help="where to build and publish (default: $DQ_TARGET or sqlite; README: Scaling out)",
    )
    p.set_defaults(func=_cmd_run)

    p = verb("preflight", "check the declarations (seeds/*.yml) and the raw CSVs against them only")
    p.set_defaults(func=_cmd_preflight)

    p = verb(
        "sync",
        "regenerate dbt_project/generated/ from seeds/*.yml (for a plain `dbt build`;"
        " a run generates its own)",
    )
    p.set_defaults(func=_cmd_sync)

    p = verb("validate", "run the GX checkpoints on the published warehouse (or a run's build)")
    p.add_argument(
        "layers",
        nargs="*",
        choices=["raw", "transformed"],
        default=["raw", "transformed"],
        help="which checkpoints to run: raw, transformed (default: both)",
    )
    p.add_argument(
        "--run-id",
        type=_run_id,
        help="validate the build of this (failed) run; default: a copy of the published warehouse",
    )
    p.set_defaults(func=_cmd_validate)

    p = verb(
        "docs", "generate dbt docs and the Quality trends page (GX Data Docs come with each run)"
    )
    p.add_argument(
        "--run-id",
        type=_run_id,
        help="document the build of this (failed) run; default: the published warehouse",
    )
    p.set_defaults(func=_cmd_docs)

    p = verb(
        "add-source",
        "profile a CSV and declare it as a source: seeds/<noun>.yml + seeds/raw_<noun>.csv",
    )
    p.add_argument("path", type=Path, help="the CSV file to profile")
    p.add_argument("--name", help="the source's noun (default: from the file name, raw_ stripped)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the declaration and notes; write nothing"
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="the source exists: profile the new file and print the proposed declaration"
        " as a diff (hand-written descriptions, rules and names are kept)",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="with --update: write the proposed declaration and copy the file into seeds/",
    )
    p.set_defaults(func=_cmd_add_source)

    p = verb(
        "model",
        "train the order-food model on the audited published warehouse and gate it"
        " (candidate in warehouse/model/candidate/)",
    )
    p.add_argument(
        "--config", type=Path, help="model configuration (default: $DQ_ROOT/model/config.yml)"
    )
    p.set_defaults(func=_cmd_model)

    p = verb(
        "predict",
        "score every published order with the production model"
        " (warehouse/predictions/: CSV and predictions.db)",
    )
    p.set_defaults(func=_cmd_predict)

    _release_verbs(verb)

    p = verb("serve", "serve dbt docs, GX Data Docs and Quality trends on 127.0.0.1 (offline)")
    p.add_argument("--port", type=int, help="default: $DQ_DOCS_PORT or 8765")
    p.set_defaults(func=_cmd_serve)

    p = verb("airflow", "run Airflow locally: start | stop | status")
    p.add_argument("action", choices=["start", "stop", "status"], help="start, stop or status")
    p.add_argument("--port", type=int, help="default: $DQ_AIRFLOW_PORT or 8080")
    p.add_argument("--home", type=Path, help="default: $DQ_AIRFLOW_HOME or airflow_home/")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="start: CeleryExecutor with Redis, PostgreSQL and two Celery workers",
    )
    p.set_defaults(func=_cmd_airflow)

    p = verb("postgres", "the project's own PostgreSQL server (DQ_PG_*): start | stop | status")
    p.add_argument("action", choices=["start", "stop", "status"], help="start, stop or status")
    p.set_defaults(func=_cmd_postgres)

    p = verb("data", "generate reproducible jafgen data into a folder")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder, e.g. .cache/data/years-1 (`make sample` writes seeds/)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace CSV files already in --out (refused otherwise)",
    )
    p.add_argument(
        "--years", type=_years, default=1.0, help="simulated years, fractions ok (default: 1)"
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.set_defaults(func=_cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns its exit code (0, 1, 2 or 3)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except preflight.BadInput as exc:  # e.g. a broken contract file met by `validate`
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return pipeline.EXIT_INPUT
    except pipeline.PipelineError as exc:  # e.g. a malformed DQ_* setting
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
