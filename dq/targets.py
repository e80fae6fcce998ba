"""Where a run builds, is audited and publishes: ``DQ_TARGET`` (or ``dq run --target``).

=========  ==============================================  =====================================
target     a run's build                                   publish
=========  ==============================================  =====================================
sqlite     ``warehouse/build/<run id>/jaffle_shop.db``     the audited file's bytes replace
           (the default)                                   ``warehouse/jaffle_shop.db`` (os.replace)
postgres   schema ``build_<run id>`` of ``$DQ_PG_DATABASE``  in one transaction: ``published`` is
                                                           renamed away and the build schema
                                                           renamed to ``published``
spark      database ``build_<run id>`` (dq.spark_target)   the views of database ``published``
                                                           re-pointed at the audited build
=========  ==============================================  =====================================

Everything else is the same on every target: the declarations, the dbt models
(portable SQL through dispatched macros, ``dbt_project/macros/parsing.sql``),
the dbt tests, the GX suites, quarantine and the anomaly monitors. The steps
(:mod:`dq.steps`) only talk to a :class:`Target`: the fingerprint that proves
what was audited, row counts, a read-only connection for the monitors, the GX
datasource, and publish.

A fingerprint is the SHA-256 of the build: on SQLite of the file's bytes, on
PostgreSQL of every table's columns and rows (an order-independent digest
computed by the server). Publish recomputes it inside the transaction that
renames the schemas, after locking every table of the build against writers,
so nothing but what the gates audited is ever published.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from dq.config import Build, Settings

log = logging.getLogger(__name__)

#: The schema readers of a PostgreSQL warehouse query.
PUBLISHED = "published"
#: Where a publish moves the schema it replaces, dropped right after.
RETIRED_PREFIX = "retired_"


class NotAudited(Exception):
    """The data about to be published is not what the gates audited."""


class Target:
    """SQLite files: the embedded default (and the base every target follows)."""

    name = "sqlite"
    #: the SQL function that makes a character from its code
    chr_function = "char"
    #: the SQL type a value is cast to for text (Spark has no TEXT)
    text_type = "text"
    #: where a published build is found afterwards (None: its build stays where it was)
    published_schema: str | None = None

    def __init__(self, settings: Settings):
        self.settings = settings

    # -------------------------------------------------------------- where

    def where(self, build: Build | None = None) -> str:
        """The build (or, without one, the published warehouse) for people to read."""
        return str(build.db if build else self.settings.published_db)

    def exists(self, build: Build | None = None) -> bool:
        """Whether the build (or the published warehouse) is there."""
        return (build.db if build else self.settings.published_db).exists()

    # -------------------------------------------------------------- reading

    def connect(self, build: Build | None = None):
        """A read-only connection to the build (or the published warehouse) whose
        ``execute(sql, params)`` takes ``?`` placeholders and returns a cursor."""
        import sqlite3

        path = build.db if build else self.settings.published_db
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def stage_rows(self, con, select: str) -> str | None:
        """The rows of ``select`` as a temporary table of the connection (replacing the
        one staged before), for queries that each read all of them: its name as a
        ``from`` clause whose columns keep their names, or None where the target
        cannot make one (a read-only server transaction)."""
        con.execute("drop table if exists temp.dq_staged")
        con.execute(f"create temp table dq_staged as {select}")
        return "temp.dq_staged as base"

    @contextlib.contextmanager
    def published_attached(self, con) -> Iterator[str | None]:
        """Make the published warehouse readable as ``published.<table>`` on a build
        connection; yields None when there is none, or why it cannot be read."""
        import sqlite3

        old_db = self.settings.published_db
        if not old_db.exists():
            yield None
            return
        try:
            con.execute("attach database ? as published", (f"file:{old_db}?mode=ro",))
        except sqlite3.DatabaseError as exc:  # a recovery run: nothing to compare with
            yield f"the published warehouse is broken ({exc})"
            return
        try:
            yield ""
        finally:
            con.execute("detach database published")

    def published_has(self, con, table: str) -> bool:
        """Whether the attached published warehouse has ``table``."""
        return bool(
            con.execute(
                "select 1 from published.sqlite_master where type = 'table' and name = ?",
                (table,),
            ).fetchone()
        )

    def table_counts(self, build: Build | None = None) -> dict[str, int]:
        """Rows per table of the build (or of the published warehouse)."""
        from dq.publish import table_counts

        return table_counts(build.db if build else self.settings.published_db)

    def fingerprint(self, build: Build) -> str:
        """SHA-256 of the build file; raises FileNotFoundError or RuntimeError
        (an interrupted write left a journal)."""
        from dq.build import settled_fingerprint

        return settled_fingerprint(build)

    # -------------------------------------------------------------- Great Expectations

    def gx_datasource(self, context, name: str, build: Build):
        """Register the build as GX datasource ``name`` on the run's context."""
        return context.data_sources.add_sqlite(name=name, connection_string=f"sqlite:///{build.db}")

    def gx_asset(self, datasource, build: Build, table: str):  # pylint: disable=unused-argument
        """A table of the build as a GX asset (its name is the table's)."""
        return datasource.add_table_asset(name=table, table_name=table)

    def gx_batch_definition(self, datasource, build: Build, table: str):
        """The whole table as GX's batch (a dataframe asset on Spark)."""
        return self.gx_asset(datasource, build, table).add_batch_definition_whole_table(table)

    def gx_run(self, checkpoint, build: Build, run_id):
        """Run a checkpoint (Spark hands each validation its table as a dataframe)."""
        return checkpoint.run(run_id=run_id)

    # -------------------------------------------------------------- publishing

    def check_published(self) -> str | None:
        """What is wrong with the published warehouse, or None."""
        from dq.publish import check_published

        return check_published(self.settings.published_db)

    def publish(self, build: Build, audited: str, keep_old: Path | None = None) -> None:
        """Replace the published warehouse with the build, if it is what was audited
        (``audited``: its fingerprint); raises :class:`NotAudited` otherwise."""
        from dq import publish as publish_mod

        try:
            publish_mod.publish(build.db, self.settings.published_db, audited, keep_old)
        except publish_mod.NotAudited as exc:
            raise NotAudited(str(exc)) from exc

    def drop(self, build: Build) -> None:
        """Remove what a build left outside its folder (nothing, on SQLite)."""


class Postgres(Target):
    """A schema per run on a PostgreSQL server; publish renames schemas."""

    name = "postgres"
    chr_function = "chr"
    published_schema = PUBLISHED

    def where(self, build: Build | None = None) -> str:
        s = self.settings
        schema = build.schema if build else PUBLISHED
        return f"postgresql://{s.pg_host}:{s.pg_port}/{s.pg_database} schema {schema}"

    def _raw(self, **kwargs):
        import psycopg2

        from dq.errors import EnvironmentFailure

        s = self.settings
        try:
            return psycopg2.connect(
                host=s.pg_host, port=s.pg_port, user=s.pg_user, password=s.pg_password,
                dbname=s.pg_database, connect_timeout=10, application_name="dq", **kwargs,
            )  # fmt: skip
        except psycopg2.OperationalError as exc:
            raise EnvironmentFailure(
                f"cannot connect to PostgreSQL at {s.pg_host}:{s.pg_port}"
                f" ({str(exc).strip()}); `make postgres` starts the project's own"
            ) from None

    def _schema_exists(self, cur, schema: str) -> bool:
        cur.execute("select 1 from pg_namespace where nspname = %s", (schema,))
        return cur.fetchone() is not None

    def exists(self, build: Build | None = None) -> bool:
        with contextlib.closing(self._raw()) as raw, raw.cursor() as cur:
            return self._schema_exists(cur, build.schema if build else PUBLISHED)

    def stage_rows(self, con, select: str) -> str | None:
        return None  # the monitors' connection is read-only: no temporary tables

    def connect(self, build: Build | None = None):
        raw = self._raw(options="-c default_transaction_read_only=on")
        con = _PgConnection(raw)
        con.execute(f"set search_path to {_ident(build.schema if build else PUBLISHED)}")
        return con

    @contextlib.contextmanager
    def published_attached(self, con) -> Iterator[str | None]:
        # The published schema sits in the same database: `published.<table>` just works.
        found = con.execute("select 1 from pg_namespace where nspname = ?", (PUBLISHED,))
        yield "" if found.fetchone() else None

    def published_has(self, con, table: str) -> bool:
        return bool(
            con.execute(
                "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
                (PUBLISHED, table),
            ).fetchone()
        )

    def _tables(self, cur, schema: str) -> list[str]:
        cur.execute(
            "select table_name from information_schema.tables where table_schema = %s"
            " and table_type = 'BASE TABLE' order by table_name",
            (schema,),
        )
        return [r[0] for r in cur.fetchall()]

    def table_counts(self, build: Build | None = None) -> dict[str, int]:
        schema = build.schema if build else PUBLISHED
        with contextlib.closing(self._raw()) as raw, raw.cursor() as cur:
            counts = {}
            for table in self._tables(cur, schema):
                cur.execute(f"select count(*) from {_ident(schema)}.{_ident(table)}")
                counts[table] = cur.fetchone()[0]
            return counts

    def _digest(self, cur, schema: str) -> str:
        """SHA-256 over every table's name, column types and an order-independent
        digest of its rows, as the server sees them now."""
        digest = hashlib.sha256()
        tables = self._tables(cur, schema)
        if not tables:
            raise FileNotFoundError(f"schema {schema} holds no tables")
        cur.execute(
            "select table_name, column_name, data_type from information_schema.columns"
            " where table_schema = %s order by table_name, ordinal_position",
            (schema,),
        )
        digest.update(repr(cur.fetchall()).encode())
        for table in tables:
            cur.execute(
                "select count(*), coalesce(md5(string_agg(h, '' order by h)), '')"
                f" from (select md5(t::text) as h from {_ident(schema)}.{_ident(table)} as t) as r"
            )
            digest.update(f"{table}:{cur.fetchone()!r};".encode())
        return digest.hexdigest()

    def fingerprint(self, build: Build) -> str:
        with contextlib.closing(self._raw()) as raw, raw.cursor() as cur:
            # One snapshot for every table: a concurrent write is all in or all out.
            cur.execute("set transaction isolation level repeatable read, read only")
            return self._digest(cur, build.schema)

    def gx_datasource(self, context, name: str, build: Build):
        s = self.settings
        # The password stays out of the run's GX config: GX substitutes it from the
        # environment (validate.run_checkpoint exports DQ_PG_* while it runs).
        # The suites' SQL names other tables of the build unqualified, as on
        # SQLite: the build's schema comes first on the search path.
        return context.data_sources.add_postgres(
            name=name,
            connection_string=(
                f"postgresql+psycopg2://{s.pg_user}:${{DQ_PG_PASSWORD}}@{s.pg_host}:{s.pg_port}"
                f"/{s.pg_database}?options=-csearch_path%3D{build.schema}"
            ),
        )

    def gx_asset(self, datasource, build: Build, table: str):
        return datasource.add_table_asset(name=table, table_name=table, schema_name=build.schema)

    def check_published(self) -> str | None:
        return None  # a schema swap leaves no half-written state to detect

    def publish(self, build: Build, audited: str, keep_old: Path | None = None) -> None:
        """In one transaction: lock every table of the build against writers,
        prove it is what was audited, rename ``published`` away and the build to
        ``published``. Readers' statements see the old schema or the new one; a
        run killed before the commit leaves ``published`` as it was."""
        retired = RETIRED_PREFIX + build.schema.removeprefix("build_")
        raw = self._raw()
        try:
            with raw, raw.cursor() as cur:
                # One publisher at a time across machines (the file lock is per host).
                cur.execute("select pg_advisory_xact_lock(hashtext('dq publish'))")
                if not self._schema_exists(cur, build.schema):
                    raise FileNotFoundError(f"{self.where(build)} is missing")
                if self._schema_exists(cur, PUBLISHED):
                    cur.execute(f"alter schema {PUBLISHED} rename to {_ident(retired)}")
                cur.execute(f"alter schema {_ident(build.schema)} rename to {PUBLISHED}")
                # Still inside the transaction: lock the tables against writers and
                # prove they hold what was audited; if not, all of it rolls back.
                for table in self._tables(cur, PUBLISHED):
                    cur.execute(f"lock table {PUBLISHED}.{_ident(table)} in share mode")
                now = self._digest(cur, PUBLISHED)
                if now != audited:
                    raise NotAudited(
                        f"{self.where(build)} changed after its audit (sha256 {now[:12]}…,"
                        f" audited {audited[:12]}…): refusing to publish it"
                    )
        finally:
            raw.close()
        self._drop_schema(retired)

    def _drop_schema(self, schema: str) -> None:
        """Drop a schema (retired or a failed build's). It waits at most 10 s
        for readers still on it; what is left is dropped by a later clean-up."""
        raw = self._raw()
        try:
            with raw, raw.cursor() as cur:
                cur.execute("set local lock_timeout = '10s'")
                cur.execute(f"drop schema if exists {_ident(schema)} cascade")
        except Exception as exc:  # noqa: BLE001 (clean-up: logged, retried later)
            log.warning("could not drop schema %s yet: %s", schema, exc)
        finally:
            raw.close()

    def drop(self, build: Build) -> None:
        self._drop_schema(build.schema)

    def retired(self) -> list[str]:
        """Schemas earlier publishes could not drop yet."""
        with contextlib.closing(self._raw()) as raw, raw.cursor() as cur:
            cur.execute(
                "select nspname from pg_namespace where nspname like %s order by 1",
                (RETIRED_PREFIX + "%",),
            )
            return [r[0] for r in cur.fetchall()]


class _PgConnection:
    """A psycopg2 connection with sqlite3's ``execute(sql, params)`` and ``?``."""

    def __init__(self, raw):
        self.raw = raw
        self.raw.autocommit = True

    def execute(self, sql: str, params=()):
        """Run one statement (``?`` placeholders, as sqlite3's) and return its cursor."""
        cur = self.raw.cursor()
        if params:
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))
        else:
            cur.execute(sql)
        return cur

    def close(self) -> None:
        """Close the server connection."""
        self.raw.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def of(settings: Settings) -> Target:
    """The target the settings select."""
    from dq.errors import BadInput
    from dq.spark_target import Spark  # it builds on this module

    kinds = {cls.name: cls for cls in (Target, Postgres, Spark)}
    try:
        return kinds[settings.target](settings)
    except KeyError:
        raise BadInput(
            f"DQ_TARGET={settings.target}: this build has no {settings.target} target"
        ) from None
