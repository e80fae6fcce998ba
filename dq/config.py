"""One place for paths and settings, each overridable by an environment variable.

Nothing else in the repository spells a path: the CLI, the DAG, the tests and
the dbt profile (through ``DQ_*`` variables that :func:`dbt_env` exports) all
read them from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process; build with :func:`load`."""

    root: Path
    seeds_dir: Path
    dbt_project_dir: Path
    profiles_dir: Path
    gx_dir: Path
    warehouse_dir: Path
    dbt_target: str = "dev"

    @property
    def build_dir(self) -> Path:
        """Where a run builds its private warehouse before the gates pass."""
        return self.warehouse_dir / "build"

    @property
    def build_db(self) -> Path:
        return self.build_dir / "jaffle_shop.db"

    @property
    def published_db(self) -> Path:
        """The warehouse consumers read; replaced atomically on publish."""
        return self.warehouse_dir / "jaffle_shop.db"

    @property
    def runs_dir(self) -> Path:
        """Run summaries (JSON), one per run id."""
        return self.warehouse_dir / "runs"

    @property
    def data_docs_dir(self) -> Path:
        return self.gx_dir / "uncommitted" / "data_docs" / "local_site"

    @property
    def dbt_target_dir(self) -> Path:
        return self.dbt_project_dir / "target"

    def dbt_env(self) -> dict[str, str]:
        """Variables that ``profiles.yml`` and ``dbt_project.yml`` read."""
        # dbt writes each seed's compiled SQL to target/run/<project>/<seed path>;
        # an absolute seed path makes that the CSV itself (dbt overwrites the raw
        # file with SQL). A path relative to the dbt project keeps it in target/.
        return {
            "DQ_SEEDS_DIR": os.path.relpath(self.seeds_dir, self.dbt_project_dir),
            "DQ_BUILD_DB": str(self.build_db),
            "DQ_BUILD_DIR": str(self.build_dir),
            "DBT_PROFILES_DIR": str(self.profiles_dir),
        }


def load() -> Settings:
    """Read the environment now (tests change it between runs)."""
    root = _path("DQ_ROOT", PROJECT_ROOT)
    return Settings(
        root=root,
        seeds_dir=_path("DQ_SEEDS_DIR", root / "seeds"),
        dbt_project_dir=_path("DQ_DBT_PROJECT_DIR", root / "dbt_project"),
        profiles_dir=_path("DQ_PROFILES_DIR", root),
        gx_dir=_path("DQ_GX_DIR", root / "gx"),
        warehouse_dir=_path("DQ_WAREHOUSE_DIR", root / "warehouse"),
        dbt_target=os.environ.get("DQ_DBT_TARGET", "dev"),
    )
