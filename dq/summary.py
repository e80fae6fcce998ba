"""The human-readable run summary printed at the end of every run."""

from __future__ import annotations

from dq.record import Run


def render(run: Run) -> str:
    """Steps with durations, rows per table, expectations per suite, and where to look."""
    out = [f"Run {run.run_id}: {run.status.upper()} (exit {run.exit_code})", "", "Steps:"]
    for step in run.steps:
        out.append(f"  {step.name:<22} {step.status:<8} {step.seconds:7.2f} s")
        if step.status == "failed" and step.message:
            out += ["      " + line for line in step.message.splitlines()]
    rows: dict[str, int] = {}
    for name in ("seed", "transform"):
        record = run.step(name)
        if record:
            rows.update(record.detail.get("rows", {}))
    if rows:
        out += ["", "Rows per table:"]
        out += [f"  {table:<22} {count:>9}" for table, count in rows.items()]
    transform = run.step("transform")
    if transform and transform.detail.get("rejected"):
        rejected = transform.detail["rejected"]
        out += ["", "Rejected rows (quarantine tables rejected_*):"]
        out += [f"  {raw:<22} {n:>9}" for raw, n in rejected.items()]
    suites = []
    for name in ("validate_raw", "validate_transformed"):  # the monitors' suites: below
        record = run.step(name)
        if record:
            suites += record.detail.get("suites", [])
    if suites:
        out += ["", "Expectations per suite (passed/evaluated, failed critical, failed warning):"]
        for s in suites:
            out.append(
                f"  {s['layer']:<12} {s['suite']:<18} {s['passed']:>3}/{s['evaluated']:<3}"
                f" {len(s['failed_critical']):>3} {len(s['failed_warning']):>3}"
            )
            out += [f"      critical: {m}" for m in s["failed_critical"]]
            out += [f"      warning:  {m}" for m in s["failed_warning"]]
    monitor = run.step("monitor")
    if monitor and "checks" in monitor.detail:
        from dq.monitors import anomaly_lines

        lines = anomaly_lines(run)
        learning = monitor.detail.get("learning", [])
        out += [
            "",
            f"Anomaly monitors: {monitor.detail['checks']} checks, {len(lines)} anomalies"
            + (f", {len(learning)} series still learning" if learning else ""),
        ]
        out += [f"  {line}" for line in lines]
    info = run.to_dict()
    out += [
        "",
        f"Published warehouse: {info['published_db']}"
        + ("" if run.exit_code == 0 else " (unchanged by this run)"),
        f"GX Data Docs:        {info['data_docs']}",
        f"dbt docs:            {info['dbt_docs']}",
        f"Quality trends:      {run.settings.trends_dir / 'index.html'}",
        f"Run record:          {run.record_path}",
    ]
    return "\n".join(out)
