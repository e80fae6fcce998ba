"""One place for paths and settings, each overridable by an environment variable.

Nothing else in the repository spells a path: the CLI, the DAG, the tests and
the dbt profile (through ``DQ_*`` variables that :func:`dbt_env` exports) all
read them from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dq.errors import BadInput

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else default


def _float(env: str, default: float) -> float:
    value = os.environ.get(env, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise BadInput(f"{env}={value!r} is not a number") from None


def _switch(env: str, default: bool) -> bool:
    value = os.environ.get(env, "").strip().lower()
    if not value:
        return default
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise BadInput(f"{env}={value!r}: use on or off")


def _int(env: str, default: int) -> int:
    value = os.environ.get(env, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise BadInput(f"{env}={value!r} is not a whole number") from None


#: The targets a run can build on; the first is the default.
TARGETS = ("sqlite", "postgres", "spark")


def _choice(env: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(env, "").strip().lower() or choices[0]
    if value not in choices:
        raise BadInput(f"{env}={value!r}: use one of {', '.join(choices)}")
    return value


def _secret(path: Path) -> str:
    """A secret the project drew for itself into a git-ignored file (or "")."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Build:
    """The private workspace of one run: ``warehouse/build/<run id>/``.

    Nothing outside the run writes here: the seeds are a snapshot taken by
    preflight, the dbt project is a farm of links to the real one with its own
    ``target/`` and ``logs/``, and the SQLite file is the one the gates audit.
    """

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "jaffle_shop.db"

    @property
    def schema(self) -> str:
        """The run's own schema on a database server (PostgreSQL, Spark)."""
        name = "build_" + "".join(ch if ch.isalnum() else "_" for ch in self.root.name.lower())
        if len(name) <= 63:  # PostgreSQL's identifier limit
            return name
        import hashlib

        return name[:54] + "_" + hashlib.sha256(self.root.name.encode()).hexdigest()[:8]

    @property
    def seeds_dir(self) -> Path:
        """Snapshot of the CSVs and their contracts, as preflight checked them."""
        return self.root / "seeds"

    @property
    def project_dir(self) -> Path:
        """The dbt project as this run sees it (links to the real files)."""
        return self.root / "project"

    @property
    def target_dir(self) -> Path:
        return self.project_dir / "target"

    @property
    def log_dir(self) -> Path:
        return self.project_dir / "logs"


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process; build with :func:`load`."""

    root: Path
    seeds_dir: Path
    dbt_project_dir: Path
    profiles_dir: Path
    gx_dir: Path
    warehouse_dir: Path
    #: the dbt target in profiles.yml; empty: the one of ``target`` (sqlite: dev)
    dbt_target_name: str = ""
    #: seconds a run waits for the warehouse lock (begin, publish) before refusing
    lock_timeout: float = 600.0
    #: largest tolerated fall of a table's row count against the published warehouse
    max_row_drop: float = 0.3
    #: largest tolerated growth (1.0: a table may at most double in one publish)
    max_row_growth: float = 1.0
    #: changes smaller than this many rows never trip the row-count gate
    row_change_min_rows: int = 50
    #: failed builds kept for inspection under warehouse/build/
    keep_failed_builds: int = 3
    #: runs whose GX results and Data Docs pages are kept under gx/uncommitted/
    keep_validation_runs: int = 10
    #: where releases are promoted (``current`` points at the one in force)
    production_dir: Path | None = None
    #: releases kept under ``production/releases/`` (the one in force always stays; 0: all)
    keep_releases: int = 10
    #: days of runs kept in the quality history (0: all); per-day series are kept
    history_keep_days: int = 400
    #: the anomaly monitors run (``DQ_MONITORS=off`` skips them, e.g. to measure their cost)
    monitors: bool = True
    #: dbt reads the seeds as streams, not whole agate tables (:mod:`dq.seed_stream`;
    #: ``DQ_STREAM_SEEDS=off``: dbt's own reader, e.g. to compare)
    stream_seeds: bool = True
    #: where a run builds and publishes (:mod:`dq.targets`): sqlite, postgres or spark
    target: str = "sqlite"
    #: the PostgreSQL server of the postgres target (``make postgres`` starts one here)
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_user: str = "dq"
    pg_password: str = ""
    pg_database: str = "jaffle_shop"
    #: where the project's own servers keep their data (default ``.services/``)
    services_path: Path | None = None
    #: the Redis server the distributed Airflow uses as Celery broker (started by the project)
    redis_host: str = "127.0.0.1"
    redis_port: int = 56379
    redis_password: str = ""
    #: Celery workers ``make airflow-distributed`` starts, and task slots per worker
    airflow_workers: int = 2
    airflow_worker_concurrency: int = 1
    #: set by the project in each Celery worker's environment: the hostname its
    #: task instances record (two workers on one host are told apart)
    airflow_worker_name: str = ""
    #: the Spark master of the spark target (``local[2]``: in this process, two cores)
    spark_master: str = "local[2]"
    #: the Spark driver's heap; the bundled data needs little
    spark_driver_memory: str = "1g"
    #: partitions after a shuffle (Spark's 200 is meant for a cluster, not a laptop)
    spark_shuffle_partitions: int = 2
    #: the address the local Spark driver binds to (``SPARK_LOCAL_IP``)
    spark_local_ip: str = "127.0.0.1"

    @property
    def dbt_target(self) -> str:
        """The profiles.yml output dbt builds with: ``dev`` (SQLite), ``postgres``, ``spark``."""
        return self.dbt_target_name or {"sqlite": "dev"}.get(self.target, self.target)

    @property
    def services_dir(self) -> Path:
        """Servers the project starts for itself (PostgreSQL, Redis); git-ignored."""
        return self.services_path or self.root / ".services"

    @property
    def pg_data_dir(self) -> Path:
        """The data folder of the project's own PostgreSQL cluster (``make postgres``)."""
        return self.services_dir / "postgres" / "data"

    @property
    def redis_dir(self) -> Path:
        """The project's Redis (Celery broker): its config, with the password (0600);
        the password itself is drawn into ``redis-password`` beside ``pg-password``."""
        return self.services_dir / "redis"

    @property
    def spark_dir(self) -> Path:
        """The spark target's warehouse (one folder per database) and its Hive
        metastore (Derby), beside the other warehouses; git-ignored."""
        return self.warehouse_dir / "spark"

    def spark_conf(self) -> dict[str, str]:
        """The SparkSession every part of a run shares (dbt's, GX's, dq.spark_target's):
        whoever starts it first starts it with these, so all see one catalog."""
        home = self.spark_dir
        return {
            "spark.master": self.spark_master,
            "spark.app.name": "dq",
            "spark.driver.memory": self.spark_driver_memory,
            "spark.driver.host": self.spark_local_ip,
            "spark.driver.bindAddress": self.spark_local_ip,
            "spark.sql.shuffle.partitions": str(self.spark_shuffle_partitions),
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.catalogImplementation": "hive",
            "spark.sql.warehouse.dir": str(home / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
            ),
            # derby.log goes here, not into whatever folder the process started in.
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
            "spark.sql.session.timeZone": "UTC",
            # Adaptive re-planning pays off on big shuffles, not on thousands of rows.
            "spark.sql.adaptive.enabled": "false",
            # Errors reach the run record through dbt, GX and dq; not the console.
            "spark.log.level": "FATAL",
            "spark.log.structuredLogging.enabled": "false",
        }

    @property
    def builds_dir(self) -> Path:
        """One folder per run (:class:`Build`)."""
        return self.warehouse_dir / "build"

    def build(self, run_id: str) -> Build:
        return Build(self.builds_dir / run_id)

    @property
    def published_db(self) -> Path:
        """The warehouse consumers read; replaced atomically on publish."""
        return self.warehouse_dir / "jaffle_shop.db"

    @property
    def broken_dir(self) -> Path:
        """Broken published warehouses set aside by a recovery run, as evidence."""
        return self.warehouse_dir / "broken"

    @property
    def runs_dir(self) -> Path:
        """Run records (JSON), one per run id."""
        return self.warehouse_dir / "runs"

    @property
    def dbt_docs_dir(self) -> Path:
        """dbt docs of the latest run that built them (what ``dq serve`` shows)."""
        return self.warehouse_dir / "docs" / "dbt"

    @property
    def model_dir(self) -> Path:
        """The model stage's work: the candidate it trained and its gate verdict."""
        return self.warehouse_dir / "model"

    @property
    def predictions_dir(self) -> Path:
        """What the production model predicted for the published orders (CSV and
        SQLite); never inside the published warehouse, which stays as audited."""
        return self.warehouse_dir / "predictions"

    @property
    def model_config(self) -> Path:
        """The versioned model configuration (features, estimator, gate)."""
        return self.root / "model" / "config.yml"

    @property
    def production(self) -> Path:
        """Releases (``releases/<id>/``) and ``current``, the one in force."""
        return self.production_dir or self.root / "production"

    @property
    def history_db(self) -> Path:
        """The quality history (:mod:`dq.history`): outlives builds and publishes."""
        return self.warehouse_dir / "history" / "quality.db"

    @property
    def trends_dir(self) -> Path:
        """The Quality trends page the docs server shows (``/trends/``)."""
        return self.warehouse_dir / "docs" / "trends"

    @property
    def data_docs_dir(self) -> Path:
        return self.gx_dir / "uncommitted" / "data_docs" / "local_site"

    @property
    def validations_dir(self) -> Path:
        return self.gx_dir / "uncommitted" / "validations"

    def dbt_env(self, build: Build) -> dict[str, str]:
        """Variables that ``profiles.yml`` reads: this run's own SQLite file, or on
        PostgreSQL the server and this run's own schema."""
        env = {
            "DQ_BUILD_DB": str(build.db),
            # dbt-sqlite attaches every *.db in this folder: it holds the build file only.
            "DQ_BUILD_DIR": str(build.root),
            "DBT_PROFILES_DIR": str(self.profiles_dir),
            "DQ_BUILD_SCHEMA": build.schema,
        }
        if self.target == "sqlite":
            env["DQ_BUILD_PRAGMAS"] = "1"  # a throw-away file: dq.dbt_hooks
        if self.target in ("sqlite", "postgres"):  # their seed loaders take a stream
            env["DQ_STREAM_SEEDS"] = "1" if self.stream_seeds else "0"  # dq.dbt_hooks
        if self.target == "postgres":
            env.update(self.pg_env())
        if self.target == "spark":
            env.update(self.spark_env())
        return env

    def pg_env(self) -> dict[str, str]:
        """The PostgreSQL server as the ``DQ_PG_*`` variables profiles.yml reads."""
        return {
            "DQ_PG_HOST": self.pg_host,
            "DQ_PG_PORT": str(self.pg_port),
            "DQ_PG_USER": self.pg_user,
            "DQ_PG_PASSWORD": self.pg_password,
            "DQ_PG_DATABASE": self.pg_database,
        }

    def spark_env(self) -> dict[str, str]:
        """The Spark session as the ``DQ_SPARK_*`` variables profiles.yml reads, and
        ``SPARK_LOCAL_IP`` for the JVM that pyspark launches."""
        conf = self.spark_conf()
        return {
            "SPARK_LOCAL_IP": self.spark_local_ip,
            "DQ_SPARK_MASTER": conf["spark.master"],
            "DQ_SPARK_DRIVER_MEMORY": conf["spark.driver.memory"],
            "DQ_SPARK_LOCAL_IP": self.spark_local_ip,
            "DQ_SPARK_SHUFFLE_PARTITIONS": conf["spark.sql.shuffle.partitions"],
            "DQ_SPARK_WAREHOUSE_DIR": conf["spark.sql.warehouse.dir"],
            "DQ_SPARK_METASTORE_URL": conf["spark.hadoop.javax.jdo.option.ConnectionURL"],
            "DQ_SPARK_JAVA_OPTIONS": conf["spark.driver.extraJavaOptions"],
        }


def for_root(root: Path, **overrides) -> Settings:
    """The project's layout under ``root`` (no environment read): what tests build on."""
    root = Path(root)
    layout = {
        "seeds_dir": root / "seeds",
        "dbt_project_dir": root / "dbt_project",
        "profiles_dir": root,
        "gx_dir": root / "gx",
        "warehouse_dir": root / "warehouse",
    }
    return Settings(root=root, **{**layout, **overrides})


def load() -> Settings:
    """Read the environment now (tests change it between runs)."""
    root = _path("DQ_ROOT", PROJECT_ROOT)
    # Outside the project when its path is closed to user postgres (a test's tmp folder).
    services = _path("DQ_SERVICES_DIR", root / ".services")
    return for_root(
        root,
        seeds_dir=_path("DQ_SEEDS_DIR", root / "seeds"),
        dbt_project_dir=_path("DQ_DBT_PROJECT_DIR", root / "dbt_project"),
        profiles_dir=_path("DQ_PROFILES_DIR", root),
        gx_dir=_path("DQ_GX_DIR", root / "gx"),
        warehouse_dir=_path("DQ_WAREHOUSE_DIR", root / "warehouse"),
        dbt_target_name=os.environ.get("DQ_DBT_TARGET", ""),
        lock_timeout=_float("DQ_LOCK_TIMEOUT", 600.0),
        max_row_drop=_float("DQ_MAX_ROW_DROP", 0.3),
        max_row_growth=_float("DQ_MAX_ROW_GROWTH", 1.0),
        row_change_min_rows=_int("DQ_ROW_CHANGE_MIN_ROWS", 50),
        keep_failed_builds=_int("DQ_KEEP_FAILED_BUILDS", 3),
        keep_validation_runs=_int("DQ_KEEP_VALIDATION_RUNS", 10),
        production_dir=_path("DQ_PRODUCTION_DIR", root / "production"),
        keep_releases=_int("DQ_KEEP_RELEASES", 10),
        history_keep_days=_int("DQ_HISTORY_KEEP_DAYS", 400),
        monitors=_switch("DQ_MONITORS", True),
        stream_seeds=_switch("DQ_STREAM_SEEDS", True),
        target=_choice("DQ_TARGET", TARGETS),
        pg_host=os.environ.get("DQ_PG_HOST", "127.0.0.1"),
        pg_port=_int("DQ_PG_PORT", 55432),
        pg_user=os.environ.get("DQ_PG_USER", "dq"),
        pg_password=os.environ.get("DQ_PG_PASSWORD") or _secret(services / "pg-password"),
        pg_database=os.environ.get("DQ_PG_DATABASE", "jaffle_shop"),
        services_path=services,
        redis_host=os.environ.get("DQ_REDIS_HOST", "127.0.0.1"),
        redis_port=_int("DQ_REDIS_PORT", 56379),
        redis_password=os.environ.get("DQ_REDIS_PASSWORD") or _secret(services / "redis-password"),
        airflow_workers=_int("DQ_AIRFLOW_WORKERS", 2),
        airflow_worker_concurrency=_int("DQ_AIRFLOW_WORKER_CONCURRENCY", 1),
        airflow_worker_name=os.environ.get("DQ_AIRFLOW_WORKER_NAME", ""),
        spark_master=os.environ.get("DQ_SPARK_MASTER", "local[2]"),
        spark_driver_memory=os.environ.get("DQ_SPARK_DRIVER_MEMORY", "1g"),
        spark_shuffle_partitions=_int("DQ_SPARK_SHUFFLE_PARTITIONS", 2),
        spark_local_ip=os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    )
