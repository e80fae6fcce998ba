"""``DQ_TARGET=spark``: a run builds, is audited and publishes on Spark.

The same declarations, dbt models (Spark bodies of the dispatched macros:
``dbt_project/macros/spark.sql``), dbt tests, GX suites and anomaly monitors
as on SQLite and PostgreSQL. The Spark session runs in the run's own process
(dbt-spark ``method: session``, master ``local[2]``) with a Hive metastore
(Derby) and the tables' Parquet files under ``warehouse/spark/``
(:meth:`dq.config.Settings.spark_conf`). dbt's session, GX's and this
module's are one and the same: whoever asks first starts it with the
project's settings (:func:`session`).

A run builds in its own database, ``build_<run id>``. The gates record a
fingerprint computed by Spark: per table its columns and types, its row count
and two order-independent sums of a 64-bit hash of every row.

Publish (write-audit-publish without table formats)
===================================================

Spark SQL on a Hive metastore cannot rename a database, and nothing in it
spans two statements in a transaction. So the audited build database is never
moved or written again; readers query the database ``published``, which holds
one VIEW per table (``published.orders`` = ``select * from build_<run>.orders``).
Publish, under the warehouse lock:

1. recomputes the fingerprint of the build and refuses (:class:`NotAudited`)
   unless it is the one the gates audited;
2. points the views at the build, one ``create or replace view`` at a time
   (and drops the views of tables the build no longer has); records the build
   in the database's properties (``dq.build``);
3. recomputes the fingerprint again: had anything written to the build during
   the swap, the views are pointed back at the previous build and publish
   refuses;
4. drops the previously published build database, which no view points at
   any more.

What readers see: each query sees one table entirely old or entirely new (a
view is replaced atomically in the metastore), but a query that joins two
tables during the swap, which lasts well under a second for the bundled data,
can see one old and one new table. A reader that needs a consistent set reads
``build_<run>`` named by ``dq.build`` (it never changes). That is the best
Spark can do without a transactional table format; a production deployment
uses Delta Lake (``CREATE OR REPLACE TABLE ... SHALLOW CLONE`` or a
``RESTORE``/``REPLACE`` in one commit per table, with a catalog-level swap) or
Apache Iceberg (branches and ``fast_forward`` / ``replace_branch``: all tables
published in one catalog commit), against a cluster's metastore through
``method: thrift`` or Databricks instead of a local session.

Only one process at a time can open an embedded Derby metastore: two runs of
the same project on Spark at once do not work (the second cannot start its
session). The warehouse lock serialises publishes anyway; a shared metastore
(a Hive metastore service, Unity Catalog) lifts that on a cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from dq.config import Build, Settings
from dq.targets import NotAudited, Target

log = logging.getLogger(__name__)

#: The database readers of a Spark warehouse query (views on the published build).
PUBLISHED = "published"
#: The property of ``published`` that names the build its views point at.
BUILD_PROPERTY = "dq.build"


def session(settings: Settings):
    """The process's SparkSession, started with the project's settings if no one
    (dbt, GX) started it yet; dbt-spark's ``getOrCreate`` then returns this one."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from dq.dbt import environment

    if SparkContext._active_spark_context is not None:  # noqa: SLF001 (pyspark's own check)
        return SparkSession.builder.getOrCreate()
    settings.spark_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in settings.spark_conf().items():
        builder = builder.config(key, value)
    # SPARK_LOCAL_IP is read by the JVM that pyspark launches here.
    with environment({"SPARK_LOCAL_IP": settings.spark_local_ip}):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def backticks(sql: str) -> str:
    """SQL with its double-quoted identifiers ("name", as dq.monitors writes
    them for SQLite and PostgreSQL) quoted with backticks: dbt-spark runs the
    session with ANSI mode off, where "name" is a string literal."""
    out, i, n = [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "'":
            end = i + 1
            while end < n and sql[end] != "'":
                end += 2 if sql[end] == "\\" else 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif ch == '"':
            name, j = [], i + 1
            while j < n:
                if sql[j] == '"' and j + 1 < n and sql[j + 1] == '"':
                    name.append('"')
                    j += 2
                elif sql[j] == '"':
                    break
                else:
                    name.append(sql[j])
                    j += 1
            out.append(_ident("".join(name)))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Cursor:
    """The rows of one query, as sqlite3's cursor hands them out."""

    def __init__(self, rows: list):
        self.rows = [tuple(r) for r in rows]

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list:
        rows, self.rows = self.rows, []
        return rows

    def __iter__(self):
        while self.rows:
            yield self.rows.pop(0)


class SparkConnection:
    """sqlite3's ``execute(sql, params)`` with ``?`` on the shared session, in
    one database (unqualified tables are its tables, as on the other targets)."""

    def __init__(self, spark, database: str):
        self.spark, self.database = spark, database

    def execute(self, sql: str, params=()):
        self.spark.catalog.setCurrentDatabase(self.database)
        # Spark binds `?` itself (positional parameters): no literal is spliced in.
        frame = self.spark.sql(backticks(sql), args=list(params) if params else None)
        return _Cursor(frame.collect())

    def close(self) -> None:
        """The session outlives the connection (dbt and GX share it)."""


class Spark(Target):
    """A database per run in a Spark session's Hive metastore; publish swaps views."""

    name = "spark"
    chr_function = "chr"
    text_type = "string"
    published_schema = PUBLISHED

    @property
    def spark(self):
        return session(self.settings)

    # -------------------------------------------------------------- where

    def where(self, build: Build | None = None) -> str:
        database = build.schema if build else PUBLISHED
        return f"spark warehouse {self.settings.spark_dir} database {database}"

    def exists(self, build: Build | None = None) -> bool:
        return self.spark.catalog.databaseExists(build.schema if build else PUBLISHED)

    # -------------------------------------------------------------- reading

    def stage_rows(self, con, select: str) -> str | None:
        return None  # Spark plans each query from the tables; nothing to gain here

    def connect(self, build: Build | None = None):
        return SparkConnection(self.spark, build.schema if build else PUBLISHED)

    @contextlib.contextmanager
    def published_attached(self, con) -> Iterator[str | None]:
        # `published.<table>` names the published views from any database.
        yield "" if self.spark.catalog.databaseExists(PUBLISHED) else None

    def published_has(self, con, table: str) -> bool:
        return self.spark.catalog.tableExists(f"{PUBLISHED}.{_ident(table)}")

    def _tables(self, database: str, views: bool = False) -> list[str]:
        if not self.spark.catalog.databaseExists(database):
            return []
        kinds = ("VIEW",) if views else ("MANAGED", "EXTERNAL")
        found = self.spark.catalog.listTables(database)
        return sorted(t.name for t in found if t.tableType in kinds and not t.isTemporary)

    def _per_table(self, database: str, tables: list[str], columns: str, source: str) -> dict:
        """One query for every table (a union: one Spark job, not one per table):
        ``{table: (values of columns)}`` over ``select <source> from <table>``."""
        if not tables:
            return {}
        parts = [
            f"select {i} as dq_table, {columns}"
            f" from (select {source} from {_ident(database)}.{_ident(t)})"
            for i, t in enumerate(tables)
        ]
        rows = self.spark.sql(" union all ".join(parts)).collect()
        return {tables[row[0]]: tuple(row[1:]) for row in rows}

    def table_counts(self, build: Build | None = None) -> dict[str, int]:
        database = build.schema if build else PUBLISHED
        tables = self._tables(database, views=build is None)
        counts = self._per_table(database, tables, "count(*)", "1 as one")
        return {t: int(counts[t][0]) for t in tables}

    def _digest(self, database: str) -> str:
        """SHA-256 over every table's name, columns and types, row count and two
        order-independent sums of row hashes, all computed by Spark."""
        tables = self._tables(database)
        if not tables:
            raise FileNotFoundError(f"database {database} holds no tables")
        # to_json keeps which column a value is in (hashes skip nulls); the
        # sums are decimals, so no ANSI setting makes them overflow.
        sums = self._per_table(
            database,
            tables,
            "count(*), sum(cast(xxhash64(j) as decimal(38, 0))),"
            " sum(cast(hash(j) as decimal(38, 0)))",
            "to_json(struct(*)) as j",
        )
        digest = hashlib.sha256()
        for table in tables:
            schema = self.spark.table(f"{_ident(database)}.{_ident(table)}").schema
            digest.update(f"{table}:{schema.simpleString()}:{sums[table]!r};".encode())
        return digest.hexdigest()

    def fingerprint(self, build: Build) -> str:
        return self._digest(build.schema)

    # -------------------------------------------------------------- Great Expectations

    def gx_datasource(self, context, name: str, build: Build):
        self.spark  # noqa: B018 (GX must find the project's session, not start its own)
        # persist: a suite's expectations read its table from memory after the first.
        return context.data_sources.add_spark(name=name, persist=True)

    def gx_batch_definition(self, datasource, build: Build, table: str):
        self.spark  # noqa: B018
        asset = datasource.add_dataframe_asset(name=table)
        return asset.add_batch_definition_whole_dataframe(table)

    def gx_run(self, checkpoint, build: Build, run_id):
        """Each validation definition on a dataframe asset gets its table,
        ``spark.table(build_<run>.<table>)``; the build is the current database,
        for the suites' SQL naming other tables of the build unqualified."""
        from great_expectations.checkpoint.checkpoint import CheckpointResult
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        spark = self.spark
        spark.catalog.setCurrentDatabase(build.schema)
        results = {}
        for definition in checkpoint.validation_definitions:
            asset = definition.data.data_asset
            parameters = None
            if asset.type == "dataframe":
                frame = spark.table(f"{_ident(build.schema)}.{_ident(asset.name)}")
                parameters = {"dataframe": frame}
            result = definition.run(
                checkpoint_id=checkpoint.id,
                batch_parameters=parameters,
                result_format=checkpoint.result_format,
                run_id=run_id,
            )
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
                run_id=run_id,
                batch_identifier=result.batch_id,
            )
            results[key] = result
        return CheckpointResult(run_id=run_id, run_results=results, checkpoint_config=checkpoint)

    # -------------------------------------------------------------- publishing

    def published_build(self) -> str | None:
        """The build database the published views point at (None: none yet)."""
        if not self.spark.catalog.databaseExists(PUBLISHED):
            return None
        rows = self.spark.sql(f"describe database extended {PUBLISHED}").collect()
        for row in rows:
            if row[0] == "Properties":
                for item in str(row[1]).strip("()").split("),"):
                    key, _, value = item.strip(" ()").partition(",")
                    if key.strip() == BUILD_PROPERTY:
                        return value.strip() or None
        return None

    def check_published(self) -> str | None:
        built = self.published_build()
        if built and not self.spark.catalog.databaseExists(built):
            return f"the published views point at {built}, which is gone"
        return None

    def _point(self, database: str, tables: list[str]) -> None:
        """Point ``published`` at ``database``: one view per table, replaced one
        at a time; views of tables it does not have are dropped."""
        spark = self.spark
        spark.sql(f"create database if not exists {PUBLISHED}")
        for table in tables:
            spark.sql(
                f"create or replace view {PUBLISHED}.{_ident(table)}"
                f" as select * from {_ident(database)}.{_ident(table)}"
            )
        for view in set(self._tables(PUBLISHED, views=True)) - set(tables):
            spark.sql(f"drop view if exists {PUBLISHED}.{_ident(view)}")
        spark.sql(
            f"alter database {PUBLISHED} set dbproperties ('{BUILD_PROPERTY}' = '{database}')"
        )

    def publish(self, build: Build, audited: str, keep_old: Path | None = None) -> None:
        """Prove the build is what the gates audited, point the published views
        at it, prove it again, then drop the build they pointed at before."""
        database = build.schema
        now = self._digest(database)
        if now != audited:
            raise NotAudited(
                f"{self.where(build)} changed after its audit (sha256 {now[:12]}…,"
                f" audited {audited[:12]}…): refusing to publish it"
            )
        before = self.published_build()
        tables = self._tables(database)
        self._point(database, tables)
        after = self._digest(database)
        if after != audited:
            if before and self.spark.catalog.databaseExists(before):
                self._point(before, self._tables(before))
            raise NotAudited(
                f"{self.where(build)} changed while it was published: the views point"
                f" at {before or 'nothing'} again"
            )
        if before and before != database:
            self._drop_database(before)

    def _drop_database(self, database: str) -> None:
        try:
            self.spark.sql(f"drop database if exists {_ident(database)} cascade")
        except Exception as exc:  # noqa: BLE001 (clean-up: logged, retried later)
            log.warning("could not drop database %s yet: %s", database, exc)

    def drop(self, build: Build) -> None:
        """Drop a build's database, unless the published views point at it."""
        if build.schema != self.published_build():
            self._drop_database(build.schema)
