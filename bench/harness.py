"""What the whole-pipeline benchmarks share (``bench/targets.py``, ``bench/pipeline.py``).

- :func:`dataset`: the CSVs of N simulated years, generated once into a cache folder;
- :func:`raw_rows`: the raw rows of a seeds folder, counted without reading a file whole;
- :class:`ThrowawayPostgres`: a PostgreSQL cluster of the benchmark's own
  (:mod:`dq.pgcluster`, fsync on) outside the project, one database per measurement,
  removed at the end.

Import it as ``from bench import harness`` with the repository root on ``sys.path``
(the bench scripts put it there).
"""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dq import config, pgcluster  # noqa: E402

#: Where :func:`dataset` keeps generated years unless told otherwise (``make data``'s folder).
DATA_CACHE = ROOT / ".cache" / "data"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dataset(years: float, cache: Path = DATA_CACHE) -> Path | None:
    """The CSVs of ``years`` simulated years (seed 42) in ``cache/years-<n>``, generated
    when missing (None for 0: the bundled sample in seeds/).

    Generated in a child process: jafgen, NumPy and Faker would grow this process, and
    Linux carries a parent's peak RSS over fork+exec into each child's ``ru_maxrss``,
    which would inflate the memory figures of every later run.
    """
    if not years:
        return None
    out = Path(cache) / f"years-{years:g}"
    if not (out / "raw_orders.csv").exists():
        print(f"generating {years:g} year(s) into {out} ...", flush=True)
        code = (
            "import sys; from pathlib import Path; from dq.data import generate; "
            "generate(Path(sys.argv[1]), years=float(sys.argv[2]), seed=42, overwrite=True)"
        )
        subprocess.run([sys.executable, "-c", code, str(out), repr(years)], cwd=ROOT, check=True)
    return out


def raw_rows(seeds: Path) -> int:
    """Data rows (lines but the header) of every ``raw_*.csv`` in ``seeds``, read in
    1 MB chunks: reading three years' files whole would grow this process by ~175 MB."""
    rows = 0
    for path in Path(seeds).glob("raw_*.csv"):
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                rows += chunk.count(b"\n")
        rows -= 1
    return rows


class ThrowawayPostgres:
    """A PostgreSQL cluster for one benchmark under ``work/services`` on a free port.

    :meth:`start` it, take :meth:`env` for each measurement (a fresh database: a
    database is a warehouse, with one ``published``), :meth:`remove` it at the end.
    """

    def __init__(self, work: Path):
        Path(work).chmod(0o755)  # user postgres enters the cluster's folder below
        self.services = Path(work) / "services"
        self.settings = dataclasses.replace(
            config.for_root(ROOT),
            target="postgres",
            pg_port=free_port(),
            services_path=self.services,
        )

    def start(self) -> str:
        """initdb and start the cluster; a one-line report."""
        return pgcluster.start(self.settings)

    def env(self, label: str) -> dict[str, str]:
        """The ``DQ_*`` settings of a run on a new database named after ``label``."""
        database = re.sub(r"\W", "_", label)
        pgcluster.start(dataclasses.replace(self.settings, pg_database=database))
        return {
            "DQ_TARGET": "postgres",
            "DQ_PG_PORT": str(self.settings.pg_port),
            "DQ_SERVICES_DIR": str(self.services),
            "DQ_PG_DATABASE": database,
        }

    def remove(self) -> None:
        """Stop the cluster and delete its data."""
        pgcluster.remove(self.settings)
