"""The bundled sample is exactly what the documented generator command writes."""

from __future__ import annotations

from dq.cli import main
from dq.data import TABLES
from tests.conftest import REPO

#: `make sample` regenerates seeds/ with these arguments.
SAMPLE_ARGS = ["data", "--years", "0.08", "--seed", "42"]


def test_bundled_sample_is_reproducible(tmp_path, capsys):
    assert main([*SAMPLE_ARGS, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for table in TABLES:
        name = f"raw_{table}.csv"
        assert (tmp_path / name).read_bytes() == (REPO / "seeds" / name).read_bytes(), name
        assert f"raw_{table}" in printed


def test_different_seed_gives_different_data(tmp_path):
    assert main(["data", "--years", "0.02", "--seed", "7", "--out", str(tmp_path / "a")]) == 0
    assert main(["data", "--years", "0.02", "--seed", "8", "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "raw_orders.csv").read_bytes()
    b = (tmp_path / "b" / "raw_orders.csv").read_bytes()
    assert a != b and a.count(b"\n") > 10
