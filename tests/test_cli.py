"""The command line's parser and its footguns, in-process (``cli.main``)."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from dq import cli
from dq.contracts import ContractError, Problem
from tests.conftest import REPO


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [verbs] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(verbs.choices)


def test_every_verb_and_argument_has_help_text():
    parser = cli.build_parser()
    verbs = _subparsers(parser)
    [verbs_action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert {a.dest for a in verbs_action._choices_actions} == set(verbs)
    assert all(a.help for a in verbs_action._choices_actions)
    missing = [
        f"{name} {action.dest}"
        for name, sub in [("", parser), *verbs.items()]
        for action in sub._actions
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []
    # The arguments the issue named, by name.
    assert "--run-id" in verbs["validate"].format_help()
    assert "which checkpoints to run" in verbs["validate"].format_help()


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["run"], False),
        (["-v", "run"], True),
        (["run", "-v"], True),
        (["run", "--verbose", "--run-id", "r1"], True),
        (["preflight", "-v"], True),
        (["--verbose", "data", "--out", "x"], True),
        (["data", "--out", "x", "-v"], True),
    ],
)
def test_verbose_before_or_after_the_verb(argv, verbose):
    assert cli.build_parser().parse_args(argv).verbose is verbose


def test_main_turns_bad_input_from_any_verb_into_exit_2(monkeypatch, capsys):
    problem = Problem(REPO / "seeds" / "orders.yml", 3, 5, "columns must map each header")

    def broken(args):
        raise ContractError([problem])

    monkeypatch.setattr(cli, "_cmd_docs", broken)
    assert cli.main(["docs"]) == 2
    assert capsys.readouterr().err == f"{problem}\n"


# --------------------------------------------------------------- dq data


def test_data_needs_out(capsys):
    assert cli.main(["data", "--years", "0.02"]) == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_data_refuses_a_folder_with_csvs_unless_overwrite(tmp_path, capsys):
    out = shutil.copytree(REPO / "seeds", tmp_path / "seeds")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert cli.main(["data", "--years", "0.02", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds CSV files" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_data_overwrites_when_asked(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "raw_orders.csv").write_text("stale\n", encoding="utf-8")
    assert cli.main(["data", "--years", "0.02", "--out", str(out), "--overwrite"]) == 0
    assert (out / "raw_orders.csv").read_text(encoding="utf-8").startswith("id,customer,")
    assert "raw_orders" in capsys.readouterr().out


def test_data_refuses_a_file_as_out(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x", encoding="utf-8")
    assert cli.main(["data", "--out", str(out), "--years", "0.02"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize("years", ["0", "-1", "51", "nan", "inf", "one"])
def test_data_refuses_absurd_years(tmp_path, capsys, years):
    out = tmp_path / "out"
    assert cli.main(["data", "--out", str(out), f"--years={years}"]) == 2
    assert "argument --years:" in capsys.readouterr().err
    assert not out.exists()


def test_data_accepts_fractions_of_a_year():
    args = cli.build_parser().parse_args(["data", "--out", "x", "--years", "0.08"])
    assert args.years == 0.08


# --------------------------------------------------------------- make help


def test_make_help_prints_no_make_escapes():
    out = subprocess.run(
        ["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "$$" not in out and "${" not in out
    lines = dict(line.split("\t", 1) for line in out.splitlines())
    assert "127.0.0.1:8080" in lines["airflow"] and "$DQ_AIRFLOW_PORT" in lines["airflow"]
    assert "127.0.0.1:8765" in lines["serve"] and "$DQ_DOCS_PORT" in lines["serve"]
