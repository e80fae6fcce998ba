"""The Quality trends page: what the monitors measured, run after run.

:func:`render` reads the quality history (:mod:`dq.history`) and writes one
static page, ``warehouse/docs/trends/index.html`` (``python -m dq serve``
shows it at ``/trends/``), with:

* per source, **volume per day**: the published series (and the days of the
  latest run when it did not publish, drawn apart), the expected band of the
  days the monitors checked, and the anomalies as red points whose tooltip is
  the monitor's line;
* **metrics over runs**: observed value against the expected band of every
  series the monitors checked, one series at a time (a selector), anomalies red;
* **rejected share per run** of each source;
* a table of the **latest anomalies**.

The charts are Vega-Lite specs built with Altair and drawn in the browser by
vega-embed from the project's ``node_modules`` (the versions GX Data Docs pin:
vega 5, vega-lite 5). Altair 6 writes Vega-Lite 6 specs; :data:`VEGA_LITE_SCHEMA`
stamps them as 5.23 (what the page loads), and ``tests/test_trends.py`` checks
every spec against vega-lite 5.23's own JSON schema, so a chart that only
Vega-Lite 6 could draw fails there, not in a reader's browser.

**Every value is data, never markup.** Sources, segments, categories and the
monitors' lines come from CSV files. The page puts them in HTML only through
:func:`html.escape`, and in the specs only as JSON inside
``<script type="application/json">`` blocks with ``<``, ``>``, ``&`` and
U+2028/U+2029 escaped (:func:`script_json`), so no value can close the block.
Vega draws text as SVG text and vega-tooltip escapes what it shows.

**No script inline, nothing from elsewhere.** The page loads ``trends.js``
(written beside it) and the vendor files from ``vendor/`` beside it (copied
from ``node_modules`` so the page also works from ``file://``; the docs
server serves the same files from ``node_modules``). vega-embed runs with
``ast: true`` (Vega's expression interpreter), so the page needs neither
``'unsafe-inline'`` nor ``'unsafe-eval'`` scripts.
"""

from __future__ import annotations

import html
import json
import logging
import os
import sqlite3
from collections import defaultdict
from pathlib import Path

from dq import history
from dq.config import Settings
from dq.datadocs import node_modules
from dq.record import now_iso

log = logging.getLogger(__name__)

#: The Vega-Lite the page loads (package.json pins vega-lite 5.23.0).
VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.23.0.json"

#: Files the page loads from ``vendor/`` -> their path under ``node_modules``.
VENDOR_FILES: dict[str, str] = {
    "vega.min.js": "vega/build/vega.min.js",
    "vega-lite.min.js": "vega-lite/build/vega-lite.min.js",
    "vega-embed.min.js": "vega-embed/build/vega-embed.min.js",
}
#: The page's own script (no inline script: the docs server's CSP allows none).
SCRIPT = Path(__file__).with_name("trends.js")

#: Anomalies listed in the table, newest first.
ANOMALY_ROWS = 50
#: Points per series in "metrics over runs" (the newest days).
METRIC_POINTS = 120

_RED = "#c62828"
_BAND = "#90caf9"
_PUBLISHED = "#1565c0"
_CANDIDATE = "#ef6c00"


# ------------------------------------------------------------------ reading


def _rows(con: sqlite3.Connection, sql: str, *params) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def read_history(path: Path) -> dict[str, list[dict]]:
    """Everything the page shows, as lists of rows; empty lists when there is no
    history yet (the database is not created by reading it)."""
    empty: dict[str, list[dict]] = {
        k: [] for k in ("runs", "observations", "series", "candidates", "layers")
    }
    if not path.exists():
        return empty
    with history.connect(path) as con:
        return {
            "runs": _rows(con, "select * from runs order by started_at, run_id"),
            "observations": _rows(
                con,
                "select o.*, r.started_at from observations o"
                " left join runs r on r.run_id = o.run_id",
            ),
            "series": _rows(con, "select * from series where metric = 'volume'"),
            "candidates": _rows(con, "select * from candidates where metric = 'volume'"),
            "layers": _rows(
                con,
                "select l.*, r.started_at from layers l left join runs r on r.run_id = l.run_id"
                " order by r.started_at",
            ),
        }


def _volume_per_day(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``{source: {day: rows}}``: segment ``""`` when measured, else the sum of segments."""
    whole: dict[tuple, float] = {}
    parts: dict[tuple, float] = defaultdict(float)
    for row in rows:
        if row["value"] is None:
            continue
        key = (row["source"], row["bucket"])
        if row["segment"] == "":
            whole[key] = row["value"]
        else:
            parts[key] += row["value"]
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (source, day), value in {**parts, **whole}.items():
        out[source][day] = value
    return out


def _latest_per(observations: list[dict], key) -> list[dict]:
    """The newest run's observation for each ``key(row)``."""
    newest: dict = {}
    for row in sorted(observations, key=lambda r: (r["started_at"] or "", r["run_id"])):
        newest[key(row)] = row
    return list(newest.values())


def _unpublished_run(data: dict) -> dict | None:
    """The latest run, when it did not publish (failed, or still running)."""
    if not data["runs"] or data["runs"][-1]["published"]:
        return None
    return data["runs"][-1]


def _unpublished_volume(source: str, run_id: str, data: dict) -> dict[str, float]:
    """``{day: rows}`` a run that did not publish measured: its candidate values
    while it runs, and the days it checked (its observations), which outlive it."""
    days = _volume_per_day(
        [c for c in data["candidates"] if c["run_id"] == run_id and c["source"] == source]
    ).get(source, {})
    mine = (run_id, source, "volume", "")
    for o in data["observations"]:
        if (o["run_id"], o["source"], o["metric"], o["segment"]) == mine and o["bucket"]:
            days.setdefault(o["bucket"], o["observed"])
    return days


def _number(value) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.4g}"


# ------------------------------------------------------------------ charts


def _chart_config(chart):
    return chart.configure_view(stroke=None).configure_axis(labelFontSize=11, titleFontSize=12)


def _spec(chart) -> dict:
    spec = _chart_config(chart).to_dict()
    spec["$schema"] = VEGA_LITE_SCHEMA
    return spec


def volume_chart(source: str, data: dict) -> dict | None:
    """Volume per day of one source: published line, unpublished days, band, anomalies."""
    import altair as alt

    latest = _unpublished_run(data)
    points = [
        {"day": day, "date": day, "rows": value, "kind": "published"}
        for day, value in sorted(
            _volume_per_day([r for r in data["series"] if r["source"] == source])
            .get(source, {})
            .items()
        )
    ]
    if latest is not None:
        unpublished = f"not published (run {latest['run_id']})"
        points += [
            {"day": day, "date": day, "rows": value, "kind": unpublished}
            for day, value in sorted(_unpublished_volume(source, latest["run_id"], data).items())
        ]
    checked = [
        o
        for o in data["observations"]
        if o["source"] == source and o["metric"] == "volume" and o["segment"] == ""
    ]
    band = [
        {
            "day": o["bucket"],
            "date": o["bucket"],
            "lower": o["lower"],
            "upper": o["upper"],
            "expected": o["expected"],
        }
        for o in _latest_per(checked, lambda r: r["bucket"])
        if o["bucket"] and o["lower"] is not None and o["upper"] is not None
    ]
    anomalies = [_anomaly_point(o, "day") for o in checked if o["status"] == "anomaly"]
    if not points and not band and not anomalies:
        return None

    x = alt.X("day:T", title="day", scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d"))
    kinds = sorted({p["kind"] for p in points}, key=lambda k: k != "published")
    layers = []
    if band:
        layers.append(
            alt.Chart(alt.Data(values=band), name="band")
            .mark_area(color=_BAND, opacity=0.35)
            .encode(
                x=x,
                y=alt.Y("lower:Q", title="rows per day"),
                y2="upper:Q",
                tooltip=[
                    alt.Tooltip("date:N", title="day"),
                    alt.Tooltip("expected:Q", format=",.0f"),
                    alt.Tooltip("lower:Q", format=",.0f"),
                    alt.Tooltip("upper:Q", format=",.0f"),
                ],
            )
        )
    if points:
        layers.append(
            alt.Chart(alt.Data(values=points), name="volume")
            .mark_line(point=True)
            .encode(
                x=x,
                y=alt.Y("rows:Q", title="rows per day"),
                color=alt.Color(
                    "kind:N",
                    title=None,
                    scale=alt.Scale(domain=kinds, range=[_PUBLISHED, _CANDIDATE][: len(kinds)]),
                    legend=alt.Legend(orient="top", labelLimit=400),
                ),
                strokeDash=alt.StrokeDash(
                    "kind:N",
                    title=None,
                    scale=alt.Scale(domain=kinds, range=[[1, 0], [5, 3]][: len(kinds)]),
                    legend=alt.Legend(orient="top", labelLimit=400),
                ),
                tooltip=[
                    alt.Tooltip("date:N", title="day"),
                    alt.Tooltip("rows:Q", format=",.0f"),
                    "kind:N",
                ],
            )
        )
    if anomalies:
        layers.append(_anomaly_layer(anomalies, x))
    chart = alt.layer(*layers).properties(width=860, height=220, title=f"{source}: rows per day")
    return _spec(chart)


def _anomaly_point(row: dict, at: str) -> dict:
    return {
        at: row["bucket"] or row["started_at"],
        "when": row["bucket"] or row["started_at"],  # as text: the chart parses `at` as a date
        "observed": row["observed"],
        "expected": row["expected"],
        "lower": row["lower"],
        "upper": row["upper"],
        "severity": row["severity"],
        "run": row["run_id"],
        "line": row["line"],
    }


def _anomaly_layer(anomalies: list[dict], x, field: str = "observed"):
    import altair as alt

    return (
        alt.Chart(alt.Data(values=anomalies), name="anomalies")
        .mark_point(filled=True, size=110, color=_RED, opacity=1, shape="circle")
        .encode(
            x=x,
            y=alt.Y(f"{field}:Q"),
            tooltip=[
                alt.Tooltip("line:N", title="anomaly"),
                alt.Tooltip("observed:Q", format=",.4~g"),
                alt.Tooltip("lower:Q", format=",.4~g"),
                alt.Tooltip("upper:Q", format=",.4~g"),
                "severity:N",
                "run:N",
            ],
        )
    )


def series_key(row: dict) -> str:
    """How a series is named in the selector: ``source · metric [· segment]``."""
    parts = [row["source"] or "", row["metric"] or ""]
    if row["segment"]:
        parts.append(str(row["segment"]))
    return " · ".join(parts)


def _metric_points(observations: list[dict]) -> list[dict]:
    """The newest observation of each series and day (or run, when untimed), the
    last :data:`METRIC_POINTS` per series, named by :func:`series_key`."""
    latest = _latest_per(
        observations,
        lambda r: (r["source"], r["metric"], r["segment"], r["bucket"] or r["run_id"]),
    )
    by_key: dict[str, list[dict]] = defaultdict(list)
    for row in latest:
        point = _anomaly_point(row, "at")
        point["status"] = row["status"]
        by_key[series_key(row)].append(point)
    values = []
    for key, points in by_key.items():
        points.sort(key=lambda p: p["at"] or "")
        values += [dict(p, series=key) for p in points[-METRIC_POINTS:]]
    return values


def metrics_chart(data: dict) -> dict | None:
    """Observed against expected for every checked series, chosen with a selector."""
    import altair as alt

    values = _metric_points(data["observations"])
    if not values:
        return None
    keys = sorted({v["series"] for v in values})
    flagged = sorted({v["series"] for v in values if v["status"] == "anomaly"})
    series = alt.param(
        name="series",
        value=(flagged or keys)[0],
        bind=alt.binding_select(options=keys, name="series "),
    )
    x = alt.X("at:T", title="day (or run)", scale=alt.Scale(type="utc"))
    base = alt.Chart(alt.Data(values=values)).transform_filter(alt.datum.series == series)
    tooltip = [
        alt.Tooltip("when:N", title="day"),
        alt.Tooltip("observed:Q", format=",.4~g"),
        alt.Tooltip("expected:Q", format=",.4~g"),
        alt.Tooltip("lower:Q", format=",.4~g"),
        alt.Tooltip("upper:Q", format=",.4~g"),
        "status:N",
        "run:N",
    ]
    layers = [
        base.mark_area(color=_BAND, opacity=0.35).encode(
            x=x, y=alt.Y("lower:Q", title="value"), y2="upper:Q"
        ),
        base.mark_line(color="#607d8b", strokeDash=[4, 3]).encode(x=x, y="expected:Q"),
        base.mark_line(point=True, color=_PUBLISHED).encode(x=x, y="observed:Q", tooltip=tooltip),
        base.transform_filter(alt.datum.status == "anomaly")
        .mark_point(filled=True, size=110, color=_RED, opacity=1)
        .encode(
            x=x,
            y="observed:Q",
            tooltip=[alt.Tooltip("line:N", title="anomaly"), *tooltip],
        )
        .properties(name="anomalies"),
    ]
    chart = (
        alt.layer(*layers)
        .add_params(series)
        .properties(width=860, height=240, title="observed (blue) against the expected band")
    )
    return _spec(chart)


def rejected_chart(data: dict) -> dict | None:
    """Rejected share of each source, run after run."""
    import altair as alt

    values = [
        {
            "started": row["started_at"],
            "table": row["tbl"],
            "share": row["share"],
            "rows": row["rows"],
            "rejected": row["rejected"],
            "run": row["run_id"],
        }
        for row in data["layers"]
        if row["started_at"] and row["share"] is not None
    ]
    if not values:
        return None
    chart = (
        alt.Chart(alt.Data(values=values), name="rejected")
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "started:T",
                title="run started",
                scale=alt.Scale(type="utc"),
            ),
            y=alt.Y("share:Q", title="rejected share", axis=alt.Axis(format="%")),
            color=alt.Color("table:N", title=None, legend=alt.Legend(orient="right")),
            tooltip=[
                "run:N",
                "table:N",
                alt.Tooltip("share:Q", format=".2%"),
                alt.Tooltip("rejected:Q", format=","),
                alt.Tooltip("rows:Q", format=","),
            ],
        )
        .properties(width=760, height=220, title="rejected rows / raw rows per run")
    )
    return _spec(chart)


# ------------------------------------------------------------------ the page


def script_json(value) -> str:
    """JSON to put inside ``<script type="application/json">``: no ``</script>``,
    ``<!--`` or line separator in any value can end or break the block."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;"
    "color:#212121}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:.9rem}td,th{padding:.25rem .6rem;"
    "text-align:left;vertical-align:top;border-bottom:1px solid #eee}"
    ".stop{color:#b00020;font-weight:600}.warn{color:#e65100;font-weight:600}"
    ".chart{margin:1rem 0}.note{color:#555}.num{text-align:right}"
    "td code{white-space:nowrap}"
)


def _anomaly_table(data: dict) -> str:
    e = html.escape
    rows = [o for o in data["observations"] if o["status"] == "anomaly"]
    rows.sort(key=lambda r: (r["started_at"] or "", r["run_id"], r["severity"] == "stop"))
    rows = rows[::-1][:ANOMALY_ROWS]
    if not rows:
        return "<p id='no-anomalies'>No anomaly found in the measured runs.</p>"
    out = [
        "<table id='anomalies'><thead><tr><th>run</th><th>severity</th><th>source</th>"
        "<th>metric</th><th>segment</th><th>day</th><th class='num'>observed</th>"
        "<th class='num'>expected</th><th>finding</th></tr></thead><tbody>"
    ]
    for o in rows:
        severity = str(o["severity"] or "")
        band = (
            f"{_number(o['lower'])} – {_number(o['upper'])}"
            if o["lower"] is not None and o["upper"] is not None
            else _number(o["expected"])
        )
        out.append(
            f"<tr><td><code>{e(str(o['run_id']))}</code></td>"
            f"<td class='{'stop' if severity == 'stop' else 'warn'}'>{e(severity)}</td>"
            f"<td>{e(str(o['source'] or ''))}</td><td>{e(str(o['metric'] or ''))}</td>"
            f"<td>{e(str(o['segment'] or ''))}</td><td>{e(str(o['bucket'] or ''))}</td>"
            f"<td class='num'>{e(_number(o['observed']))}</td><td class='num'>{e(band)}</td>"
            f"<td>{e(str(o['line'] or ''))}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _summary(data: dict) -> str:
    e = html.escape
    runs = data["runs"]
    latest = runs[-1]
    published = sum(1 for r in runs if r["published"])
    return (
        f"<p id='summary'>{len(runs)} runs measured ({published} published). Latest: run"
        f" <code>{e(str(latest['run_id']))}</code> started {e(str(latest['started_at']))},"
        f" <strong>{e(str(latest['status'] or '?'))}</strong>.</p>"
    )


def page(data: dict, generated_at: str) -> str:
    """The whole HTML page for the history ``data`` (see :func:`read_history`)."""
    e = html.escape
    head = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Quality trends</title><style>{_STYLE}</style></head><body>"
        "<p><a href='/'>&larr; docs</a></p><h1>Quality trends</h1>"
    )
    foot = f"<p class='note'>Page written {e(generated_at)} from the quality history.</p>"
    if not data["runs"] and not data["series"]:
        return (
            head + "<p id='empty'>No runs measured yet: the monitor step of"
            " <code>python -m dq run</code> fills the quality history, and this page"
            " shows it after the next run.</p>" + foot + "</body></html>"
        )
    sections = [_summary(data) if data["runs"] else "", "<h2>Latest anomalies</h2>"]
    sections.append(_anomaly_table(data))
    sections.append(
        "<h2>Volume per day</h2><p class='note'>Rows per day as published (blue), the days of"
        " the latest run when it did not publish (orange, dashed), the expected band of the"
        " days the monitors checked, and anomalies (red; hover for the finding).</p>"
    )
    sources = sorted({r["source"] for r in data["series"] + data["observations"]} - {None})
    specs = [v for v in (volume_chart(source, data) for source in sources) if v is not None]
    sections += [_container(f"chart-volume-{i}", spec) for i, spec in enumerate(specs)]
    if not specs:
        sections.append("<p class='note'>No source with days measured yet.</p>")
    sections.append(
        "<h2>Metrics over runs</h2><p class='note'>Each checked series: observed value"
        " (blue), expected value (dashed) and band; pick a series below the chart.</p>"
    )
    sections.append(_container("chart-metrics", metrics_chart(data)))
    sections.append("<h2>Rejected share per run</h2>")
    sections.append(_container("chart-rejected", rejected_chart(data)))
    scripts = "".join(f"<script src='vendor/{name}'></script>" for name in VENDOR_FILES)
    scripts += "<script src='trends.js'></script>"
    return head + "".join(sections) + foot + scripts + "</body></html>"


def _container(chart_id: str, spec: dict | None) -> str:
    if spec is None:
        return f"<p class='note' id='{chart_id}'>Nothing measured yet.</p>"
    return (
        f"<div class='chart' id='{chart_id}'></div>"
        f"<script type='application/json' class='vega-spec' data-chart='{chart_id}'>"
        f"{script_json(spec)}</script>"
    )


# ------------------------------------------------------------------ writing


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def render(settings: Settings) -> Path:
    """Write the Quality trends page from the history; returns its path.

    Also writes ``trends.js`` and copies the vendor files from ``node_modules``
    beside it (a missing one is logged: the server still serves what is
    installed, and ``file://`` then shows no charts). Each file is replaced
    atomically, so the server never sends half a page.
    """
    out = settings.trends_dir
    (out / "vendor").mkdir(parents=True, exist_ok=True)
    modules = node_modules()
    for name, source in VENDOR_FILES.items():
        try:
            data = (modules / source).read_bytes()
        except OSError:
            log.warning("%s is missing (npm ci): the trends page has no charts offline", source)
            continue
        target = out / "vendor" / name
        if not target.exists() or target.read_bytes() != data:
            _replace(target, data)
    _replace(out / "trends.js", SCRIPT.read_bytes())
    index = out / "index.html"
    _replace(index, page(read_history(settings.history_db), now_iso()).encode())
    return index
