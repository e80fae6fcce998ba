"""The bundled sample is exactly what the documented generator command writes."""

from __future__ import annotations

import shlex
import shutil

from dq.cli import main
from dq.data import TABLES
from tests.conftest import REPO


def _sample_args() -> list[str]:
    """What `make sample` passes to `python -m dq`, read from the Makefile."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nsample:", 1)[1].splitlines()[1]
    return shlex.split(recipe.split(" -m dq ", 1)[1])


def test_bundled_sample_is_reproducible(tmp_path, capsys):
    args = _sample_args()
    # `make sample` writes over the committed seeds/, which holds CSVs: it must
    # say so, and then it does replace them.
    assert args[args.index("--out") + 1] == "seeds" and "--overwrite" in args
    out = shutil.copytree(REPO / "seeds", tmp_path / "seeds")
    for table in TABLES:
        (out / f"raw_{table}.csv").write_text("stale\n", encoding="utf-8")
    args[args.index("--out") + 1] = str(out)
    assert main(args) == 0
    printed = capsys.readouterr().out
    for table in TABLES:
        name = f"raw_{table}.csv"
        assert (out / name).read_bytes() == (REPO / "seeds" / name).read_bytes(), name
        assert f"raw_{table}" in printed


def test_different_seed_gives_different_data(tmp_path):
    assert main(["data", "--years", "0.02", "--seed", "7", "--out", str(tmp_path / "a")]) == 0
    assert main(["data", "--years", "0.02", "--seed", "8", "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "raw_orders.csv").read_bytes()
    b = (tmp_path / "b" / "raw_orders.csv").read_bytes()
    assert a != b and a.count(b"\n") > 10
