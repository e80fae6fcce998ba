"""The raw-file contracts, read from the one place they are declared.

``seeds/_seeds.yml`` is both dbt's seed configuration and our contract: the
ordered keys of ``column_types`` are the expected header of each CSV, and
``meta`` carries the primary key and the largest rejected share a source
tolerates. Preflight, the GX raw suites and the quarantine gate all read it
through :func:`load_contracts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

CONTRACT_FILE = "_seeds.yml"


@dataclass(frozen=True)
class Contract:
    """What one raw CSV must look like."""

    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    max_rejected_share: float
    staging_table: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def rejected_table(self) -> str:
        """The quarantine table dbt builds for this source."""
        return "rejected_" + self.name.removeprefix("raw_")


def load_contracts(seeds_dir: Path) -> dict[str, Contract]:
    """All contracts, keyed by seed name, in declaration order."""
    path = Path(seeds_dir) / CONTRACT_FILE
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    contracts = {}
    for seed in doc["seeds"]:
        config = seed["config"]
        meta = config.get("meta", {})
        key = meta["primary_key"]
        contracts[seed["name"]] = Contract(
            name=seed["name"],
            columns=tuple(config["column_types"]),
            primary_key=tuple(key) if isinstance(key, list) else (key,),
            max_rejected_share=float(meta.get("max_rejected_share", 0.0)),
            staging_table=meta["staging"],
        )
    return contracts
