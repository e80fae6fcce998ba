"""Run the Great Expectations suites on the build warehouse and update Data Docs.

The file context lives in ``gx/`` (committed: config, suites, validation
definitions, checkpoints; git-ignored: ``gx/uncommitted/`` with results and
Data Docs). :func:`register` writes the committed part from :mod:`dq.suites`
and the contracts: a build step (``make gx-suites``), never a run. A run only
reads it, checks it is up to date, and writes under ``gx/uncommitted/``.

``Checkpoint.run()`` never raises on failed expectations; :func:`run_checkpoint`
reads the result and reports failures by severity, and the caller decides.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dq import datadocs
from dq.config import Build, Settings
from dq.contracts import load_contracts
from dq.errors import BadInput, EnvironmentFailure
from dq.lock import file_lock
from dq.suites import CRITICAL, declare

log = logging.getLogger(__name__)

DATASOURCE = "warehouse"
#: The Data Docs site in gx/great_expectations.yml.
DATA_DOCS_SITE = "local_site"
#: GX substitutes this variable into the connection string at run time, so the
#: committed gx/great_expectations.yml holds no machine path.
DB_VARIABLE = "DQ_GX_WAREHOUSE_DB"


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


def get_context(settings: Settings):
    """The project's GX file context in ``settings.gx_dir`` (any folder name)."""
    import great_expectations as gx

    settings.gx_dir.mkdir(parents=True, exist_ok=True)
    return gx.get_context(mode="file", context_root_dir=str(settings.gx_dir))


def _datasource(context, db: Path | None = None):
    if db is not None:
        os.environ[DB_VARIABLE] = str(db)
    else:
        os.environ.setdefault(DB_VARIABLE, ":memory:")
    try:
        return context.data_sources.get(DATASOURCE)
    except KeyError:
        return context.data_sources.add_sqlite(
            name=DATASOURCE, connection_string="sqlite:///${" + DB_VARIABLE + "}"
        )


def register(settings: Settings):
    """Register every suite, table asset, validation definition and checkpoint.

    Returns the context. Idempotent; a build step (``make gx-suites``), not a
    run step: it rewrites tracked files under ``gx/``.
    """
    import great_expectations as gx

    context = get_context(settings)
    datasource = _datasource(context)
    declared = declare(load_contracts(settings.seeds_dir).values())
    for layer, suites in declared.items():
        definitions = []
        for table, expectations in suites.items():
            suite = gx.ExpectationSuite(name=table, expectations=expectations)
            _set_stable_ids(suite)
            suite.meta = {"layer": layer}
            suite = context.suites.add_or_update(suite)
            try:
                asset = datasource.get_asset(table)
            except LookupError:
                asset = datasource.add_table_asset(name=table, table_name=table)
            try:
                batch = asset.get_batch_definition(table)
            except KeyError:
                batch = asset.add_batch_definition_whole_table(table)
            definitions.append(
                context.validation_definitions.add_or_update(
                    gx.ValidationDefinition(name=table, data=batch, suite=suite)
                )
            )
        context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=layer,
                validation_definitions=definitions,
                # No UpdateDataDocsAction: it rebuilds the site index once per suite
                # (21 times a run); run_checkpoint builds the site once per checkpoint.
                actions=[],
                result_format={"result_format": "SUMMARY"},
            )
        )
    return context


def _set_stable_ids(suite) -> None:
    """Give each expectation an id derived from its suite, position and config.

    GX draws random ids otherwise, and every run would rewrite the committed
    suite JSON; stable ids keep ``gx/expectations/`` a pure function of
    :mod:`dq.suites` (a test checks that).
    """
    suite.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dq-suite:{suite.name}"))
    for position, expectation in enumerate(suite.expectations):
        config = expectation.configuration
        key = f"{suite.name}:{position}:{config.type}:{sorted(config.kwargs.items())!r}"
        expectation.id = str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def stale_suites(settings: Settings, seeds_dir: Path, context=None) -> list[str]:
    """Suites whose registered expectations differ from what the contracts declare."""
    import great_expectations as gx

    context = context or get_context(settings)
    stale = []
    for suites in declare(load_contracts(seeds_dir).values()).values():
        for table, expectations in suites.items():
            wanted = gx.ExpectationSuite(name=table, expectations=expectations)
            _set_stable_ids(wanted)
            try:
                have = context.suites.get(table)
            except Exception:  # GX raises its own "not found" types
                stale.append(table)
                continue
            if [e.id for e in have.expectations] != [e.id for e in wanted.expectations]:
                stale.append(table)
    return stale


def run_checkpoint(settings: Settings, build: Build, layer: str, run_id: str) -> CheckpointReport:
    """Validate one layer ("raw" or "transformed") of a run's build warehouse.

    The GX objects must be registered already (``make gx-suites``) and match the
    contracts the run loaded; results and Data Docs go to ``gx/uncommitted/``,
    one checkpoint at a time (the site and its index are shared by all runs).
    """
    from great_expectations.core.run_identifier import RunIdentifier

    context = get_context(settings)
    _datasource(context, build.db)
    stale = stale_suites(settings, build.seeds_dir, context)
    if stale:
        raise BadInput(
            f"the GX suites in {settings.gx_dir} are out of date with the contracts"
            f" ({', '.join(stale)}): run `make gx-suites` and commit the result"
        )
    try:
        checkpoint = context.checkpoints.get(layer)
    except Exception as exc:
        raise EnvironmentFailure(
            f"GX checkpoint {layer!r} is not registered in {settings.gx_dir}: run `make gx-suites`"
        ) from exc
    uncommitted = settings.gx_dir / "uncommitted"
    uncommitted.mkdir(parents=True, exist_ok=True)
    with file_lock(uncommitted / ".lock", f"run {run_id} ({layer})", settings.lock_timeout):
        # dq.datadocs: render CSV values as text, then make the site work offline.
        datadocs.use_escaping_views(context)
        result = checkpoint.run(run_id=RunIdentifier(run_name=f"{run_id}-{layer}"))
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
    """The pages of this checkpoint's results and the site index, built once.

    A suite's own page changes only when ``make gx-suites`` rewrites the suite,
    so it is rebuilt only when missing or older than the suite's JSON.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    resources = list(result.run_results)
    for name in sorted({v.suite_name for v in result.run_results.values()}):
        page = settings.data_docs_dir / "expectations" / f"{name}.html"
        source = settings.gx_dir / "expectations" / f"{name}.json"
        if not page.exists() or page.stat().st_mtime < source.stat().st_mtime:
            resources.append(ExpectationSuiteIdentifier(name=name))
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=resources)


def _describe(config, result: dict) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k in ("column", "column_list")}
    what = config.description or config.type
    where = f" {kwargs}" if kwargs else ""
    count = result.get("unexpected_count") if isinstance(result, dict) else None
    return f"{what}{where}" + (f" ({count} unexpected)" if count else "")
