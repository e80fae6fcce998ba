"""Command line: ``python -m dq <verb>``.

Exit codes (stable): 0 published / success, 1 a quality gate failed (nothing
published), 2 bad input or usage (nothing loaded, nothing published).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dq import config, pipeline, preflight


def _cmd_run(args: argparse.Namespace) -> int:
    from dq.summary import render

    run = pipeline.run_all(config.load(), run_id=args.run_id)
    print(render(run))
    return run.exit_code if run.exit_code is not None else pipeline.EXIT_GATE


def _cmd_validate(args: argparse.Namespace) -> int:
    from dq import validate

    settings = config.load()
    if not settings.build_db.exists():
        print(
            f"no build warehouse at {settings.build_db}; run `python -m dq run` first",
            file=sys.stderr,
        )
        return pipeline.EXIT_INPUT
    ok = True
    for layer in args.layers:
        report = validate.run_checkpoint(settings, layer, args.run_id or pipeline.new_run_id())
        for s in report.suites:
            flag = "ok" if s.success else "FAILED"
            print(f"{layer:<12} {s.suite:<18} {s.passed}/{s.evaluated} {flag}")
            for message in s.failed_critical:
                print(f"    critical: {message}")
        ok &= report.success
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
    settings = config.load()
    try:
        static = pipeline.generate_docs(settings)
    except pipeline.GateFailed as exc:
        print(exc, file=sys.stderr)
        return pipeline.EXIT_GATE
    print(f"dbt docs:     {static}")
    print(f"GX Data Docs: {settings.data_docs_dir / 'index.html'}")
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


def _cmd_serve(args: argparse.Namespace) -> int:
    from dq import serve

    return serve.serve(args.port)


def _cmd_airflow(args: argparse.Namespace) -> int:
    from dq import airflow_local

    return airflow_local.command(args.action, args.home, args.port)


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


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb; each argument has a help text (a test walks them)."""
    parser = argparse.ArgumentParser(
        prog="python -m dq",
        description="Jaffle Shop data-quality pipeline: dbt seeds -> models -> GX -> publish.",
        epilog="Exit codes: 0 published/success, 1 quality gate failed, 2 bad input or usage.",
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
    p.add_argument("--run-id", help=run_id_help)
    p.set_defaults(func=_cmd_run)

    p = verb("preflight", "check the raw CSVs and seeds/_seeds.yml against the contracts only")
    p.set_defaults(func=_cmd_preflight)

    p = verb("validate", "run the GX checkpoints on the current build warehouse")
    p.add_argument(
        "layers",
        nargs="*",
        choices=["raw", "transformed"],
        default=["raw", "transformed"],
        help="which checkpoints to run: raw, transformed (default: both)",
    )
    p.add_argument("--run-id", help=run_id_help)
    p.set_defaults(func=_cmd_validate)

    p = verb("docs", "generate dbt docs (GX Data Docs come with each run)")
    p.set_defaults(func=_cmd_docs)

    p = verb("serve", "serve dbt docs and GX Data Docs on 127.0.0.1 (offline)")
    p.add_argument("--port", type=int, help="default: $DQ_DOCS_PORT or 8765")
    p.set_defaults(func=_cmd_serve)

    p = verb("airflow", "run Airflow locally: start | stop | status")
    p.add_argument("action", choices=["start", "stop", "status"], help="start, stop or status")
    p.add_argument("--port", type=int, help="default: $DQ_AIRFLOW_PORT or 8080")
    p.add_argument("--home", type=Path, help="default: $DQ_AIRFLOW_HOME or airflow_home/")
    p.set_defaults(func=_cmd_airflow)

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
    """Run one verb; returns its exit code (0, 1 or 2)."""
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
