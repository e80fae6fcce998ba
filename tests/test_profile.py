"""`dq add-source`: profiling real public CSVs into source declarations.

The files are real and ship inside PyPI packages pinned in requirements.in:
palmerpenguins' ``penguins-raw.csv`` (messy headers, ``NA`` tokens, dates) and
vega_datasets' ``airports.csv`` and ``seattle-weather.csv`` (``2012/01/01``).

:func:`rejections` is a small independent reading of docs/sources.md's row
rules (type, format, required, values, pattern, range, key): it proves the two
promises of a proposed declaration without dbt, namely that every row of the
profiled file passes and that typical breakage does not. The end-to-end test
proves the same through ``dq run`` once the generator (``dq.generate``) is there.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
import sqlite3
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from dq import profile as profiler
from dq.errors import BadInput
from dq.sources import SQL_KEYWORDS
from tests.conftest import copy_project, run_cli

PENGUINS = Path(str(files("palmerpenguins") / "data" / "penguins-raw.csv"))
AIRPORTS = Path(str(files("vega_datasets") / "_data" / "airports.csv"))
WEATHER = Path(str(files("vega_datasets") / "_data" / "seattle-weather.csv"))
REAL_CSVS = sorted(
    [PENGUINS, Path(str(files("palmerpenguins") / "data" / "penguins.csv"))]
    + list(Path(str(files("vega_datasets") / "_data")).glob("*.csv"))
    + list((Path(__file__).resolve().parent.parent / "seeds").glob("raw_*.csv"))
)


def declare(path: Path, seeds_dir: Path | None = None, **kwargs) -> profiler.Profile:
    """Profile ``path`` against an empty (or the given) seeds folder."""
    return profiler.profile(path, seeds_dir=seeds_dir or Path("/nonexistent"), **kwargs)


# ------------------------------------------------- an independent rule checker

_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_ISO = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")


def _is_date(text: str, spec: dict) -> bool:
    fmt = spec.get("format", "iso")
    formats = _ISO if fmt == "iso" else (fmt,)
    if spec["type"] == "date" and fmt == "iso":
        formats = ("%Y-%m-%d",)
    elif fmt == "iso":
        text = re.sub(r"(:\d\d)\.\d+$", r"\1", text)  # fractions of a second
    for f in formats:
        width = len(dt.datetime(2000, 1, 1).strftime(f))
        try:
            if len(text) == width:
                dt.datetime.strptime(text, f)
                return True
        except ValueError:
            pass
    return False


def _cell_problem(h: str, text: str, spec: dict) -> str | None:
    kind = spec.get("type", "text")
    if kind in ("integer", "money") and not re.fullmatch(r"-?\d+", text):
        return f"{h} is not a whole number"
    if kind == "decimal" and not _NUMBER.fullmatch(text):
        return f"{h} is not a number"
    words = spec.get("true_values", ["true"]) + spec.get("false_values", ["false"])
    if kind == "boolean" and text.lower() not in words:
        return f"{h} is not one of the true and false words"
    if kind in ("date", "timestamp") and not _is_date(text, spec):
        return f"{h} is not a {kind}"
    if "values" in spec and text not in spec["values"]:
        return f"{h} is not one of the values"
    if "pattern" in spec and not re.fullmatch(spec["pattern"], text):
        return f"{h} does not match {spec['pattern']}"
    if kind in ("integer", "decimal", "money"):
        if "min" in spec and float(text) < spec["min"]:
            return f"{h} is below {spec['min']}"
        if "max" in spec and float(text) > spec["max"]:
            return f"{h} is above {spec['max']}"
    return None


def rejections(declaration: dict, path: Path) -> dict[int, str]:
    """Row number (0-based, data rows) -> the first rule it breaks."""
    file = declaration.get("file", {})
    with open(path, newline="", encoding=file.get("encoding", "utf-8")) as fh:
        rows = list(csv.reader(fh, delimiter=file.get("delimiter", ",")))
    header, data = rows[0], [r for r in rows[1:] if r]
    nulls = set(file.get("nulls", []))
    columns = declaration["columns"]
    assert list(columns) == header
    key = declaration.get("key")
    key = [key] if isinstance(key, str) else key or []
    out: dict[int, str] = {}
    seen: dict[tuple, int] = {}
    for i, row in enumerate(data):
        cells = {
            h: (v.strip() if v.strip() not in nulls else "")
            for h, v in zip(header, row, strict=True)
        }
        missing = [h for h in key if not cells[h]]
        if missing:
            out[i] = f"{missing[0]} is missing"
            continue
        identity = tuple(cells[h] for h in key) if key else tuple(cells.values())
        if identity in seen and declaration.get("duplicates") != "keep_all":
            out[i] = "duplicate " + " and ".join(key or ["row"])
            out.setdefault(seen[identity], out[i])
            continue
        seen[identity] = i
        for h, spec in columns.items():
            spec = spec or {}
            if not cells[h]:
                if spec.get("required"):
                    out[i] = f"{h} is missing"
                    break
                continue
            problem = _cell_problem(h, cells[h], spec)
            if problem:
                out[i] = problem
                break
    return out


# ------------------------------------------------------------ real files


def test_penguins_raw_names_types_nulls_and_key():
    p = declare(PENGUINS, name="penguins")
    d, cols = p.declaration, p.declaration["columns"]
    assert p.rows == 344 and len(cols) == 17
    assert d["file"] == {"encoding": "utf-8", "delimiter": ",", "nulls": ["NA"]}
    # Messy headers stay the file contract; clean names beside them.
    assert list(cols) == PENGUINS.read_text().splitlines()[0].split(",")
    names = {h: s.get("name", h) for h, s in cols.items()}
    assert names["Culmen Length (mm)"] == "culmen_length_mm"
    assert names["Body Mass (g)"] == "body_mass_g"
    assert names["Delta 15 N (o/oo)"] == "delta_15_n_o_oo"
    assert names["studyName"] == "study_name"
    assert names["Individual ID"] == "individual_id"
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", n) for n in names.values())
    # Types on the raw text, NA set aside.
    assert cols["Sample Number"] == {
        "name": "sample_number",
        "type": "integer",
        "required": True,
        "min": 0,
    }
    assert cols["Culmen Length (mm)"] == {"name": "culmen_length_mm", "type": "decimal", "min": 0}
    assert cols["Body Mass (g)"]["type"] == "integer"
    assert cols["Delta 13 C (o/oo)"] == {"name": "delta_13_c_o_oo", "type": "decimal"}  # < 0
    assert cols["Date Egg"] == {"name": "date_egg", "type": "date", "required": True}
    assert cols["Clutch Completion"] == {
        "name": "clutch_completion",
        "type": "boolean",
        "required": True,
        "true_values": ["yes"],
        "false_values": ["no"],
    }
    assert cols["Island"]["values"] == ["Biscoe", "Dream", "Torgersen"]
    assert cols["Sex"] == {"name": "sex", "values": ["FEMALE", "MALE"]}  # NA is no value
    assert cols["Comments"] == {"name": "comments"}  # prose: no set, not required
    assert cols["Individual ID"]["pattern"] == "[A-Z]+[0-9]+[A-Z]+[0-9]+"
    # No single column is unique; the study and the bird together are.
    assert d["key"] == ["studyName", "Individual ID"]
    assert d["max_rejected_share"] == 0.05
    assert "description" not in d  # never made of CSV text
    assert any("closed set of 3 values" in n and "Island" in n for n in p.notes)
    assert rejections(d, PENGUINS) == {}


def test_airports_key_ranges_and_na_kept_as_a_city():
    p = declare(AIRPORTS, name="airports")
    d, cols = p.declaration, p.declaration["columns"]
    assert p.rows == 3376
    assert d["file"] == {"encoding": "utf-8", "delimiter": ","}  # no typed column has NA
    assert d["key"] == "iata"
    assert cols["iata"] == {}  # a clean name already, text, key (so required)
    assert cols["latitude"] == {"type": "decimal", "required": True, "min": 0}
    assert cols["longitude"] == {"type": "decimal", "required": True}  # negatives: no min
    assert cols["country"]["values"][-1] == "USA" and len(cols["country"]["values"]) == 5
    assert "values" not in cols["state"]  # 57 states: not a closed set we would guess
    assert any("'city' holds 'NA'" in n for n in p.notes)
    assert not any("max" in s for s in cols.values())  # no upper bound from the data
    assert rejections(d, AIRPORTS) == {}


def test_seattle_weather_slash_dates():
    d = declare(WEATHER, name="weather").declaration
    assert d["key"] == "date"
    assert d["columns"]["date"] == {"type": "date", "format": "%Y/%m/%d"}
    assert d["columns"]["weather"]["values"] == ["drizzle", "fog", "rain", "snow", "sun"]
    assert d["columns"]["precipitation"] == {"type": "decimal", "required": True, "min": 0}
    assert rejections(d, WEATHER) == {}


@pytest.mark.parametrize("path", REAL_CSVS, ids=lambda p: p.name)
def test_every_row_of_a_real_file_passes_and_the_yaml_round_trips(path):
    p = declare(path)
    assert rejections(p.declaration, path) == {}
    text = profiler.render(p.declaration, noun=p.noun, rows=p.rows)
    assert yaml.safe_load(text) == p.declaration
    assert max(map(len, text.splitlines())) <= profiler.LINE_WIDTH


def test_vega_timestamps_with_their_formats():
    temps = Path(str(files("vega_datasets") / "_data" / "seattle-temps.csv"))
    sf = Path(str(files("vega_datasets") / "_data" / "sf-temps.csv"))
    assert declare(temps).declaration["columns"]["date"] == {
        "type": "timestamp",
        "format": "%Y/%m/%d %H:%M",
    }
    assert declare(sf).declaration["columns"]["date"]["format"] == "%Y/%m/%d %H:%M:%S"
    # "Jan 1 2000" is no fixed-width pattern of numbers: text.
    stocks = Path(str(files("vega_datasets") / "_data" / "stocks.csv"))
    assert declare(stocks).declaration["columns"]["date"].get("type", "text") == "text"


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _break(src: Path, dest: Path, edits: dict[int, dict[str, str]], extra: list | None = None):
    with open(src, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    for i, changes in edits.items():
        for h, v in changes.items():
            rows[1 + i][header.index(h)] = v
    rows += extra or []
    with open(dest, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def test_typical_breakage_is_rejected(tmp_path):
    d = declare(PENGUINS).declaration
    broken = tmp_path / "penguins.csv"
    row_10 = read_rows(PENGUINS)[11]
    _break(
        PENGUINS,
        broken,
        {
            0: {"Body Mass (g)": "3750g"},  # a letter in a number
            1: {"Island": "Atlantis"},  # an unknown category
            2: {"Date Egg": "2007-11-31"},  # no such day
            3: {"Culmen Depth (mm)": "-1"},  # negative where all were >= 0
            4: {"Date Egg": ""},  # blank where there never was one
            5: {"Clutch Completion": "maybe"},
            6: {"Individual ID": "N-7"},  # not the shape of the others
        },
        extra=[row_10],  # a repeated key
    )
    assert rejections(d, broken) == {
        0: "Body Mass (g) is not a whole number",
        1: "Island is not one of the values",
        2: "Date Egg is not a date",
        3: "Culmen Depth (mm) is below 0",
        4: "Date Egg is missing",
        5: "Clutch Completion is not one of the true and false words",
        6: "Individual ID does not match [A-Z]+[0-9]+[A-Z]+[0-9]+",
        10: "duplicate studyName and Individual ID",
        344: "duplicate studyName and Individual ID",
    }


# ------------------------------------------------------------ inference rules


@pytest.mark.parametrize(
    ("headers", "names"),
    [
        (["Culmen Length (mm)", "Delta 15 N (o/oo)"], ["culmen_length_mm", "delta_15_n_o_oo"]),
        (
            ["studyName", "HTTPStatus", "Body Mass (g)"],
            ["study_name", "http_status", "body_mass_g"],
        ),
        (["order", "Group", "select", "rowid"], ["order_", "group_", "select_", "rowid_"]),
        (["2019 sales", "% fat", "#", ""], ["col_2019_sales", "pct_fat", "num", "column_4"]),
        (["Name", "name", "NAME "], ["name", "name_2", "name_3"]),
        (["Température (°C)", "a-b", "A B"], ["temperature_c", "a_b", "a_b_2"]),
        (["reject_reason"], ["reject_reason_"]),
    ],
)
def test_clean_names(headers, names):
    assert profiler.clean_names(headers) == names
    assert not set(names) & SQL_KEYWORDS


def test_clean_names_keep_the_names_in_force():
    assert profiler.clean_names(["a b", "A_B"], keep={"A_B": "a_b"}) == ["a_b_2", "a_b"]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_encoding_and_delimiter(tmp_path):
    text = "Stadt;Größe (m²);Notiz\n" + "".join(
        f'München {i};{i % 7 + 1}0;"a; b"\n' for i in range(30)
    )
    d = declare(_write(tmp_path / "a.csv", text, "cp1252")).declaration
    assert d["file"] == {"encoding": "cp1252", "delimiter": ";"}
    assert d["columns"]["Größe (m²)"] == {
        "name": "grosse_m2",
        "type": "integer",
        "required": True,
        "min": 0,
    }
    d = declare(_write(tmp_path / "b.csv", "\ufeffid\tv\n" + "x\t1\n" * 3, "utf-8")).declaration
    assert d["file"]["encoding"] == "utf-8-sig" and d["file"]["delimiter"] == "\t"
    d = declare(_write(tmp_path / "c.csv", "id|v\n1|a,b\n2|c,d\n", "utf-8")).declaration
    assert d["file"]["delimiter"] == "|"


def test_null_tokens_money_flags_compound_keys_and_duplicates(tmp_path):
    lines = ["store,day,price,tax_paid,is_open,score,code,zip,note"]
    for i in range(40):
        price = "N/A" if i == 3 else str(100 * i)
        score = "-" if i == 5 else f"{i / 3:.2f}"
        lines.append(
            f"s{i % 4},2024-01-{i // 4 + 1:02d},{price},{i},{i % 2},{score},AB-{i},0{i:04d},-"
        )
    d = declare(_write(tmp_path / "raw_sales.csv", "\n".join(lines) + "\n")).declaration
    c = d["columns"]
    assert d["file"]["nulls"] == ["-", "N/A"]  # seen in typed columns
    assert c["price"] == {"type": "money", "unit": "cents", "min": 0}  # N/A is blank
    assert c["tax_paid"] == {"type": "money", "unit": "cents", "required": True, "min": 0}
    assert c["is_open"]["type"] == "boolean" and c["is_open"]["true_values"] == ["1"]
    assert c["score"] == {"type": "decimal", "min": 0}
    assert c["code"] == {"pattern": "[A-Z]+-[0-9]+"}  # the key: required anyway
    assert c["zip"] == {"required": True}  # leading zeros: a code, not a number
    assert c["note"] == {}  # always "-", now blank
    assert c["day"] == {"type": "date", "required": True}
    assert d["key"] == "code"  # unique, id-like first
    # Without the unique columns: the smallest unique pair.
    pairs = ["store,day,v"] + [f"s{i % 4},d{i // 4},{i % 3}" for i in range(40)]
    assert declare(_write(tmp_path / "p.csv", "\n".join(pairs) + "\n")).declaration["key"] == [
        "store",
        "day",
    ]
    # No key at all and identical rows: keep them all.
    same = declare(_write(tmp_path / "s.csv", "a,b\n1,x\n1,x\n2,y\n")).declaration
    assert "key" not in same and same["duplicates"] == "keep_all"


def test_an_unnamed_row_index_column(tmp_path):
    # R's write.csv and pandas' to_csv start with an unnamed column of row names.
    text = '"","x"\n' + "".join(f'"{i}",{i % 3}\n' for i in range(1, 31))
    p = declare(_write(tmp_path / "r.csv", text))
    assert p.declaration["columns"][""] == {"name": "column_1", "type": "integer", "min": 0}
    assert p.declaration["key"] == ""
    rendered = profiler.render(p.declaration)
    assert "\n  '':" in rendered and yaml.safe_load(rendered) == p.declaration


def test_only_ascii_digits_are_numbers(tmp_path):
    # Python's \\d also matches "٣" (Arabic-Indic three); SQL's checks do not.
    text = "n,d\n" + "".join(f"{i},2020-01-1{i}\n" for i in range(9)) + "1\u0663,2020-01-1\u0663\n"
    c = declare(_write(tmp_path / "u.csv", text)).declaration["columns"]
    assert c["n"].get("type", "text") == "text" and c["d"].get("type", "text") == "text"


def test_refuses_files_a_run_would_refuse(tmp_path):
    with pytest.raises(BadInput, match=r"rag.csv:3: 2 fields where the header has 3"):
        declare(_write(tmp_path / "rag.csv", "a,b,c\n1,2,3\n4,5\n"))
    with pytest.raises(BadInput, match="repeats 'a'"):
        declare(_write(tmp_path / "dup.csv", "a,b,a\n1,2,3\n"))
    with pytest.raises(BadInput, match="no data rows"):
        declare(_write(tmp_path / "empty.csv", "a,b\n"))
    with pytest.raises(BadInput, match="not a noun"):
        declare(PENGUINS, name="../x")


def test_render_is_safe_for_untrusted_text():
    declaration = {
        "file": {"encoding": "utf-8", "delimiter": ","},
        "columns": {
            "a: b # c": {"name": "a_b_c", "values": ["x\n- y", "{{ z }}", "'; drop table t"]},
            "x\u202ey": {"values": ["\x1b[31mred"]},
            "yes": {
                "name": "yes_",
                "type": "boolean",
                "true_values": ["yes"],
                "false_values": ["no"],
            },
        },
    }
    text = profiler.render(declaration)
    assert yaml.safe_load(text) == declaration
    assert "\u202e" not in text and "\x1b" not in text
    assert profiler.printable("a\x1b[31m\u202e") == "a\\x1b[31m\\u202e"


# ------------------------------------------------------------ references


def test_references_to_existing_sources_by_value_overlap(tmp_path):
    root = copy_project(tmp_path / "project")
    assert run_cli(root, "add-source", str(AIRPORTS)).returncode == 0
    codes = [r[0] for r in read_rows(AIRPORTS)][1:]
    lines = ["flight,origin,destination,gate"]
    for i in range(300):
        # destination: every code but one is an airport (99.7 %): noted, not declared.
        destination = "XXX" if i == 7 else codes[(i * 7 + 1) % len(codes)]
        lines.append(f"F{i},{codes[i % 50]},{destination},{codes[i % 3]}")
    routes = _write(tmp_path / "routes.csv", "\n".join(lines) + "\n")
    p = profiler.profile(routes, seeds_dir=root / "seeds")
    c = p.declaration["columns"]
    assert c["origin"] == {"required": True, "references": "airports"}  # 50 codes
    assert "references" not in c["destination"]
    assert any("'destination': 99.7% of its values are 'iata's of airports" in n for n in p.notes)
    assert "references" not in c["gate"]  # 3 values: too few to be sure
    assert any("'gate': all 3 values are 'iata's of airports" in n for n in p.notes)


# ------------------------------------------------------------ the command


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_dry_run_prints_and_writes_nothing(root):
    before = _tree(root)
    result = run_cli(root, "add-source", str(PENGUINS), "--name", "penguins", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert _tree(root) == before
    assert re.search(
        r"^  Culmen Length \(mm\) +culmen_length_mm +decimal, >= 0$", result.stdout, re.M
    )
    assert "unsure:" in result.stdout and "not written: --dry-run" in result.stdout
    printed = result.stdout.split("(not written: --dry-run)\n", 1)[1]
    assert yaml.safe_load(printed) == declare(PENGUINS, root / "seeds").declaration


def test_add_source_writes_the_declaration_and_a_byte_copy_then_refuses_the_noun(root):
    result = run_cli(root, "add-source", str(PENGUINS), "--name", "penguins")
    assert result.returncode == 0, result.stderr
    seeds = root / "seeds"
    assert (seeds / "raw_penguins.csv").read_bytes() == PENGUINS.read_bytes()
    text = (seeds / "penguins.yml").read_text()
    assert text.startswith("# seeds/penguins.yml declares seeds/raw_penguins.csv")
    assert yaml.safe_load(text)["key"] == ["studyName", "Individual ID"]
    assert "wrote seeds/penguins.yml" in result.stdout or f"wrote {seeds}" in result.stdout
    assert "next: python -m dq run" in result.stdout

    again = run_cli(root, "add-source", str(WEATHER), "--name", "penguins")
    assert again.returncode == 2
    assert "source 'penguins' exists" in again.stderr and "--update" in again.stderr
    assert (seeds / "penguins.yml").read_text() == text
    # The noun from the file name: raw_ stripped, snake_case.
    assert profiler.noun_for(Path("x/raw_Sales Data.csv")) == "sales_data"
    assert run_cli(root, "add-source", str(WEATHER), "--write").returncode == 2


def test_update_proposes_a_diff_and_keeps_what_people_wrote(root, tmp_path):
    seeds = root / "seeds"
    assert run_cli(root, "add-source", str(PENGUINS), "--name", "penguins").returncode == 0
    declaration = yaml.safe_load((seeds / "penguins.yml").read_text())
    declaration["description"] = "One penguin per nest and season."
    declaration["columns"]["Island"]["description"] = "Where the nest is."
    declaration["columns"]["Body Mass (g)"]["name"] = "body_mass_grams"
    (seeds / "penguins.yml").write_text(profiler.render(declaration, noun="penguins"))
    before = _tree(root)

    # The file changes shape: Comments is gone, a new column arrives, a new island.
    new = tmp_path / "penguins-2.csv"
    with open(PENGUINS, newline="") as fh:
        rows = [r[:-1] + [f"R{i}"] for i, r in enumerate(csv.reader(fh))]
    rows[0][-1] = "Ring Code"
    rows[1][4] = "Anvers"
    with open(new, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)

    result = run_cli(root, "add-source", str(new), "--name", "penguins", "--update")
    assert result.returncode == 0, result.stderr
    assert _tree(root) == before  # a proposal only
    out = result.stdout
    assert "penguins.yml (in force)\n+++ " in out
    assert "-  Comments:" in out
    assert re.search(r"^\+  Ring Code: +\{name: ring_code, required: true, pattern: ", out, re.M)
    # Island's line with its description is too long for one line: one setting a line.
    assert "\n-    values: [Biscoe, Dream, Torgersen]\n" in out
    assert "\n+    values: [Anvers, Biscoe, Dream, Torgersen]\n" in out
    assert "\n     description: Where the nest is.\n" in out  # unchanged
    assert "columns gone from the file: 'Comments'" in out
    assert "nothing written: add --write" in out

    result = run_cli(root, "add-source", str(new), "--name", "penguins", "--update", "--write")
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((seeds / "penguins.yml").read_text())
    assert written["description"] == "One penguin per nest and season."
    assert written["columns"]["Island"]["description"] == "Where the nest is."
    assert written["columns"]["Body Mass (g)"]["name"] == "body_mass_grams"
    assert written["key"] == ["studyName", "Individual ID"]
    assert "Comments" not in written["columns"]
    assert (seeds / "raw_penguins.csv").read_bytes() == new.read_bytes()
    # The file in place is its own update.
    again = run_cli(root, "add-source", str(seeds / "raw_penguins.csv"), "--update")
    assert again.returncode == 0 and "no change proposed" in again.stdout


def test_update_needs_the_source(root):
    result = run_cli(root, "add-source", str(PENGUINS), "--name", "penguins", "--update")
    assert result.returncode == 2 and "no source 'penguins'" in result.stderr


# ------------------------------------------------------------ end to end


@pytest.mark.slow
def test_new_sources_publish_on_the_first_run_and_broken_rows_are_quarantined(root):
    for path, noun in ((PENGUINS, "penguins"), (AIRPORTS, "airports")):
        result = run_cli(root, "add-source", str(path), "--name", noun)
        assert result.returncode == 0, result.stdout + result.stderr
    run = run_cli(root, "run")
    assert run.returncode == 0, run.stdout + run.stderr

    def counts() -> dict[str, int]:
        with sqlite3.connect(root / "warehouse" / "jaffle_shop.db") as db:
            return {
                t: db.execute(f"select count(*) from {t}").fetchone()[0]
                for t in ("stg_penguins", "rejected_penguins", "stg_airports", "rejected_airports")
            }

    assert counts() == {
        "stg_penguins": 344,
        "rejected_penguins": 0,
        "stg_airports": 3376,
        "rejected_airports": 0,
    }
    seeds = root / "seeds"
    first = next(r for r in read_rows(PENGUINS) if r[0] == "PAL0809")
    _break(
        PENGUINS,
        seeds / "raw_penguins.csv",
        {
            0: {"Body Mass (g)": "3750g"},
            1: {"Island": "Atlantis"},
            2: {"Date Egg": "2007-11-31"},
        },
        extra=[first[:7] + ["No"] + first[8:]],  # the key again, with other values
    )
    _break(AIRPORTS, seeds / "raw_airports.csv", {0: {"latitude": "north"}, 1: {"iata": "00V"}})
    run = run_cli(root, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    with sqlite3.connect(root / "warehouse" / "jaffle_shop.db") as db:
        penguins = [r[0] for r in db.execute("select reject_reason from rejected_penguins")]
        airports = [r[0] for r in db.execute("select reject_reason from rejected_airports")]
    assert sum("Body Mass (g)" in r for r in penguins) == 1
    assert sum("Island" in r for r in penguins) == 1
    assert sum("Date Egg" in r for r in penguins) == 1
    assert sum("duplicate" in r for r in penguins) == 2  # both versions of the key
    assert len(penguins) == 5
    assert sum("latitude" in r for r in airports) == 1
    assert sum("duplicate" in r for r in airports) == 2
    shutil.rmtree(root / "warehouse" / "build", ignore_errors=True)
