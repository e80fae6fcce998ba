"""Reproducible Jaffle Shop raw data from the ``jafgen`` simulator.

jafgen draws from Python's ``random``, NumPy's global generator, Faker and
``uuid.uuid4`` (which reads ``os.urandom``); none of them is seeded by
jafgen itself. :func:`generate` seeds the first three and swaps ``uuid4`` for a
generator drawn from the seeded ``random`` for the duration of the call, so
the same arguments always write the same bytes.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import uuid
from pathlib import Path
from unittest import mock

import numpy as np

#: The raw tables the pipeline reads (jafgen also writes tweets; we do not use them).
TABLES = ("customers", "orders", "items", "products", "stores", "supplies")

#: More simulated years than anyone benchmarks (one year is ~60 MB of CSV).
MAX_YEARS = 50


class OutputExists(Exception):
    """The output folder already holds CSV files and overwriting was not asked for."""


@contextlib.contextmanager
def _seeded(seed: int):
    # Import first: jafgen seeds Faker and draws numbers at import time.
    import jafgen.simulation  # noqa: F401
    from faker import Faker

    random.seed(seed)
    np.random.seed(seed)
    Faker.seed(seed)

    def uuid4() -> uuid.UUID:
        return uuid.UUID(int=random.getrandbits(128), version=4)

    with mock.patch.object(uuid, "uuid4", uuid4):
        yield


def generate(
    out_dir: Path, *, years: float = 1.0, seed: int = 42, overwrite: bool = False
) -> dict[str, int]:
    """Simulate ``years`` of trading (fractions allowed) into ``out_dir/raw_*.csv``.

    Refuses (:class:`OutputExists`) a folder that already holds CSV files
    unless ``overwrite``: the committed ``seeds/`` is one such folder.
    Returns the number of data rows written per file.
    """
    if not 0 < years <= MAX_YEARS:
        raise ValueError(f"years must be more than 0 and at most {MAX_YEARS}, not {years}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(f"--out {out_dir} is a file, not a folder")
    existing = sorted(p.name for p in out_dir.glob("*.csv")) if out_dir.is_dir() else []
    if existing and not overwrite:
        raise OutputExists(
            f"{out_dir} already holds CSV files ({', '.join(existing[:3])}"
            f"{', ...' if len(existing) > 3 else ''}); pass --overwrite to replace them"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with _seeded(seed):
        from jafgen.simulation import Simulation

        sim = Simulation(max(1, int(years + 0.999)), "raw")
        sim.sim_days = max(1, round(365 * years))
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            sim.run_simulation()
        entities = {
            "customers": [c.to_dict() for c in sim.customers.values()],
            "orders": [o.to_dict() for o in sim.orders],
            "items": [i.to_dict() for o in sim.orders for i in o.items],
            "stores": [m.store.to_dict() for m in sim.markets],
        }
        from jafgen.stores.inventory import Inventory
        from jafgen.stores.stock import Stock

        entities["supplies"] = Stock().to_dict()
        entities["products"] = Inventory().to_dict()
    counts = {}
    for name in TABLES:
        rows = entities[name]
        with open(out_dir / f"raw_{name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0].keys()), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        counts[f"raw_{name}"] = len(rows)
    return counts
