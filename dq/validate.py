"""Run the Great Expectations suites on a run's build warehouse and update Data Docs.

Every run validates with suites generated from the declarations it checked
(:mod:`dq.suites`), registered in a GX file context of its own,
``warehouse/build/<run id>/gx/``: its suites, table assets, validation
definitions and checkpoints belong to that run, so no run changes what
another one validates with and nothing tracked is rewritten. The context is
made from ``gx/great_expectations.yml`` (tracked) with two stores pointed at
the shared folders under ``gx/uncommitted/``: validation results and the Data
Docs site, written one checkpoint at a time under a lock.

``Checkpoint.run()`` never raises on failed expectations; :func:`run_checkpoint`
reads the result and reports failures by severity, and the caller decides.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dq import datadocs, targets
from dq.config import Build, Settings
from dq.dbt import environment
from dq.lock import file_lock
from dq.sources import load_sources
from dq.suites import CRITICAL, declare, suite_notes

log = logging.getLogger(__name__)

DATASOURCE = "warehouse"
#: The Data Docs site in gx/great_expectations.yml.
DATA_DOCS_SITE = "local_site"
CONFIG = "great_expectations.yml"


@dataclass
class SuiteResult:
    """Outcome of one suite on one table."""

    suite: str
    layer: str
    evaluated: int
    passed: int
    failed_critical: list[str] = field(default_factory=list)
    failed_warning: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failed_critical


@dataclass
class CheckpointReport:
    """What a checkpoint found, plus where Data Docs are."""

    name: str
    suites: list[SuiteResult]
    data_docs_index: Path | None

    @property
    def success(self) -> bool:
        return all(s.success for s in self.suites)


def marts(settings: Settings) -> list[str]:
    """The hand-written mart models (their rules are dbt tests)."""
    folder = settings.dbt_project_dir / "models" / "marts"
    return sorted(p.stem for p in folder.glob("*.sql"))


def features(settings: Settings) -> list[str]:
    """The feature tables models learn from (their rules are GX suites, dq.suites)."""
    folder = settings.dbt_project_dir / "models" / "features"
    return sorted(p.stem for p in folder.glob("*.sql"))


def run_context(settings: Settings, build: Build):
    """The run's own GX file context in ``<build>/gx/``, with every suite,
    asset, validation definition and checkpoint registered from the
    declarations in the build's seed snapshot (created on first use)."""
    import great_expectations as gx

    root = build.root / "gx"
    if (root / CONFIG).exists():
        return gx.get_context(mode="file", context_root_dir=str(root))
    config = yaml.safe_load((settings.gx_dir / CONFIG).read_text(encoding="utf-8"))
    config.pop("fluent_datasources", None)
    config.pop("config_variables_file_path", None)
    config["plugins_directory"] = str(settings.gx_dir / "plugins")
    stores = config["stores"]
    stores["validation_results_store"]["store_backend"]["base_directory"] = str(
        settings.validations_dir
    )
    site = config["data_docs_sites"][DATA_DOCS_SITE]
    site["store_backend"]["base_directory"] = str(settings.data_docs_dir)
    settings.validations_dir.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    context = gx.get_context(mode="file", context_root_dir=str(root))
    targets.of(settings).gx_datasource(context, DATASOURCE, build)
    return context


def _register(context, settings: Settings, build: Build, layer: str) -> None:
    """Register one layer's suites, assets and checkpoint, once its tables exist
    (GX tests a table asset's table when it is added)."""

    datasource = context.data_sources.get(DATASOURCE)
    target = targets.of(settings)
    sources = load_sources(build.seeds_dir)
    notes = suite_notes(sources.values())
    suites = declare(sources, marts(settings), features(settings), target.name)[layer]
    definitions = []
    for table, expectations in suites.items():
        batch = target.gx_batch_definition(datasource, build, table)
        definitions.append(
            _definition(context, table, expectations, batch, layer, notes=notes.get(table))
        )
    _checkpoint(context, layer, definitions)


def _definition(context, name: str, expectations, batch, layer: str, notes=None):
    """A suite (stable expectation ids, its layer in ``meta``) and its validation
    definition on ``batch``, registered."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name, expectations=expectations, notes=notes)
    _set_stable_ids(suite)
    suite.meta = {"layer": layer}
    suite = context.suites.add(suite)
    return context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )


def _checkpoint(context, name: str, definitions) -> None:
    import great_expectations as gx

    context.checkpoints.add(
        gx.Checkpoint(
            name=name,
            validation_definitions=definitions,
            # No UpdateDataDocsAction: it rebuilds the site index once per suite;
            # run_checkpoint builds the site once per checkpoint.
            actions=[],
            result_format={"result_format": "SUMMARY"},
        )
    )


@contextlib.contextmanager
def _config_written_once(context):
    """GX's file context rewrites the whole ``great_expectations.yml`` after each
    asset and each batch definition it adds: two YAML dumps a table, each longer
    than the last (about half a second of the transformed layer's registration).
    While a layer registers, those writes are held back; the file is written once
    at the end, with everything registered so far (also when registering failed,
    as GX would have left it)."""
    # pylint: disable=protected-access
    save = context._save_project_config
    context._save_project_config = lambda *args, **kwargs: None
    try:
        yield
    finally:
        del context._save_project_config
        save()


def _set_stable_ids(suite) -> None:
    """Give each expectation an id derived from its suite, position and config,
    so that the same declaration gives the same ids in every run."""
    suite.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dq-suite:{suite.name}"))
    for position, expectation in enumerate(suite.expectations):
        config = expectation.configuration
        key = f"{suite.name}:{position}:{config.type}:{sorted(config.kwargs.items())!r}"
        expectation.id = str(uuid.uuid5(uuid.NAMESPACE_URL, key))


#: The layer of the anomaly monitors' checks (their own datasource, dq.monitors).
MONITORS = "monitors"


def _register_monitors(context, build: Build, observations) -> None:
    """The monitors' checks as GX suites, one per source (``monitors_<noun>``):
    each check is one expectation on its row of ``<build>/monitor/checks.db``,
    so Data Docs show its observed value, expected range and line."""

    from dq.monitors import expectations, write_checks

    path = write_checks(build.root / "monitor" / "checks.db", observations)
    datasource = context.data_sources.add_sqlite(
        name=MONITORS, connection_string=f"sqlite:///{path}"
    )
    batch = datasource.add_table_asset(name="checks", table_name="checks")
    batch = batch.add_batch_definition_whole_table("checks")
    definitions = [
        _definition(context, name, items, batch, MONITORS)
        for name, items in expectations(observations).items()
    ]
    _checkpoint(context, MONITORS, definitions)


_sqlite_functions_installed = False


def _fast_sqlite_regexp() -> None:
    """GX's regex expectations on SQLite call SQLAlchemy's Python ``regexp`` once per
    row, and it looks the pattern up in ``re``'s cache every time (7 s of a
    3-year run). Every SQLite connection SQLAlchemy opens in this process gets
    the same function with the compiled pattern kept: same results, no lookup."""
    global _sqlite_functions_installed  # pylint: disable=global-statement
    if _sqlite_functions_installed:
        return
    import re
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    compiled: dict[str, re.Pattern] = {}

    def regexp(pattern: str, value: str | None) -> bool | None:
        if value is None:
            return None
        matcher = compiled.get(pattern)
        if matcher is None:
            matcher = compiled[pattern] = re.compile(pattern)
        return matcher.search(value) is not None

    # On checkout, once per pooled connection: after the dialect's own "connect"
    # hook, which registers its regexp and would replace this one.
    @event.listens_for(Pool, "checkout")
    def _register(dbapi_connection, record, _proxy):
        if isinstance(dbapi_connection, sqlite3.Connection) and "dq_regexp" not in record.info:
            dbapi_connection.create_function("regexp", 2, regexp, deterministic=True)
            record.info["dq_regexp"] = True

    _sqlite_functions_installed = True


def run_checkpoint(
    settings: Settings, build: Build, layer: str, run_id: str, observations=None
) -> CheckpointReport:
    """Validate one layer ("raw", "transformed", or the anomaly monitors'
    ``observations``) of a run's build warehouse.

    Results and Data Docs go to ``gx/uncommitted/``, one checkpoint at a time
    (the site and its index are shared by all runs).
    """
    _fast_sqlite_regexp()
    # GX reads a server's password from the environment (see dq.targets), never a file.
    with environment(settings.pg_env() if settings.target == "postgres" else {}):
        return _run_checkpoint(settings, build, layer, run_id, observations)


def _run_checkpoint(settings, build, layer, run_id, observations) -> CheckpointReport:
    from great_expectations.core.run_identifier import RunIdentifier

    context = run_context(settings, build)
    try:
        checkpoint = context.checkpoints.get(layer)
    except Exception:  # GX raises its own "not found" types
        with _config_written_once(context):
            if layer == MONITORS:
                _register_monitors(context, build, observations or [])
            else:
                _register(context, settings, build, layer)
        checkpoint = context.checkpoints.get(layer)
    uncommitted = settings.gx_dir / "uncommitted"
    uncommitted.mkdir(parents=True, exist_ok=True)
    with file_lock(uncommitted / ".lock", f"run {run_id} ({layer})", settings.lock_timeout):
        # dq.datadocs: render CSV values as text, then make the site work offline.
        datadocs.use_escaping_views(context)
        run_name = RunIdentifier(run_name=f"{run_id}-{layer}")
        result = targets.of(settings).gx_run(checkpoint, build, run_name)
        _build_data_docs(context, settings, result)
        datadocs.finalize_site(settings.data_docs_dir)
    suites = []
    for validation in result.run_results.values():
        failed = {CRITICAL: [], "warning": [], "info": []}
        for r in validation.results:
            if not r.success:
                config = r.expectation_config
                severity = getattr(config, "severity", CRITICAL)  # an enum or its value
                severity = str(getattr(severity, "value", severity))
                failed.setdefault(severity, []).append(_describe(config, r.result))
        stats = validation.statistics
        suites.append(
            SuiteResult(
                suite=validation.suite_name,
                layer=layer,
                evaluated=int(stats["evaluated_expectations"]),
                passed=int(stats["successful_expectations"]),
                failed_critical=failed[CRITICAL],
                failed_warning=failed["warning"],
            )
        )
    index = settings.data_docs_dir / "index.html"
    return CheckpointReport(
        name=layer, suites=suites, data_docs_index=index if index.exists() else None
    )


def _build_data_docs(context, settings: Settings, result) -> None:
    """The pages of this checkpoint's results, and the site index, built once.

    A suite's own page is rebuilt only when the suite changed: the run's suite
    JSON is compared with a stamp of the one the page was built from.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    resources = list(result.run_results)
    stamps = settings.gx_dir / "uncommitted" / "suite_pages"
    stamps.mkdir(parents=True, exist_ok=True)
    fresh = {}
    for name in sorted({v.suite_name for v in result.run_results.values()}):
        suite = Path(context.root_directory) / "expectations" / f"{name}.json"
        digest = hashlib.sha256(suite.read_bytes()).hexdigest()
        page = settings.data_docs_dir / "expectations" / f"{name}.html"
        stamp = stamps / f"{name}.sha256"
        if not page.exists() or not stamp.exists() or stamp.read_text() != digest:
            resources.append(ExpectationSuiteIdentifier(name=name))
            fresh[stamp] = digest
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=resources)
    for stamp, digest in fresh.items():
        stamp.write_text(digest)


def _describe(config, result: dict) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k in ("column", "column_list")}
    what = config.description or config.type
    where = f" {kwargs}" if kwargs else ""
    count = result.get("unexpected_count") if isinstance(result, dict) else None
    return f"{what}{where}" + (f" ({count} unexpected)" if count else "")
