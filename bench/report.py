"""The benchmark's outputs: the results as JSON, two plots, and the docs' table of figures."""

import json
import platform
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import psutil  # noqa: E402

TARGETS = {
    "sockets": 10_000,
    "rss_per_connection_kb": 50,
    "pickups_per_second": 500,
    "create_to_reply_p99_ms": 10,
    "create_to_offer_p99_ms": 50,
    "notifications_per_second": 5_000,
    "fanout_ratio": 10,
}


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "commit": _commit(),
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if results.get("connections"):
        _memory_plot(results["connections"], out / "memory.png")
    if results.get("pipeline"):
        _latency_plot(results["pipeline"]["rates"], out / "latency.png")
    (out / "figures.inc").write_text(figures(results))


def _memory_plot(connections: dict, path: Path) -> None:
    points = connections["points"]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot([p["connections"] for p in points], [p["rss_mb"] for p in points], marker="o")
    axes.set_xlabel("open notification sockets")
    axes.set_ylabel("uvicorn RSS (MB)")
    axes.set_title(f"Memory against connections: {connections['rss_per_connection_kb']} KB each")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _latency_plot(rates: list[dict], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    offered = [r["offered_rate"] for r in rates]
    for key, label in (
        ("create_to_reply_ms", "create→reply"),
        ("create_to_offer_ms", "create→offer"),
        ("accept_to_customer_ms", "accept→customer told"),
    ):
        for q, style in (("p50", "--"), ("p99", "-")):
            values = [r[key][q] for r in rates]
            if any(v is not None for v in values):
                axes.plot(offered, values, style, marker="o", label=f"{label} {q}")
    axes.set_yscale("log")
    axes.set_xlabel("offered load (pickups/s)")
    axes.set_ylabel("latency (ms)")
    axes.set_title("Latency against offered load")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def verdicts(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, goal, measured, met) for each target the run measured."""
    rows = []
    connections = results.get("connections")
    if connections:
        rows.append(
            (
                "Sockets on one uvicorn, no failed handshake",
                f"{TARGETS['sockets']:,}",
                f"{connections['sockets_open']:,} open, {connections['failed_handshakes']} failed",
                connections["sockets_open"] >= TARGETS["sockets"]
                and connections["failed_handshakes"] == 0,
            )
        )
        rows.append(
            (
                "RSS per connection",
                f"≤ {TARGETS['rss_per_connection_kb']} KB",
                f"{connections['rss_per_connection_kb']} KB",
                connections["rss_per_connection_kb"] <= TARGETS["rss_per_connection_kb"],
            )
        )
    pipeline = results.get("pipeline")
    if pipeline:
        best = pipeline["max_sustained_rate"]
        rows.append(
            (
                "Pickups/s sustained, create→offer, nothing lost",
                f"≥ {TARGETS['pickups_per_second']}",
                f"{best}",
                best >= TARGETS["pickups_per_second"],
            )
        )
        half = pipeline.get("half_rate")
        if half:
            reply, offer = half["create_to_reply_ms"]["p99"], half["create_to_offer_ms"]["p99"]
            rows.append(
                (
                    f"create→reply p99 at half rate ({half['offered_rate']}/s)",
                    f"≤ {TARGETS['create_to_reply_p99_ms']} ms",
                    f"{reply} ms",
                    reply is not None and reply <= TARGETS["create_to_reply_p99_ms"],
                )
            )
            rows.append(
                (
                    f"create→offer p99 at half rate ({half['offered_rate']}/s)",
                    f"≤ {TARGETS['create_to_offer_p99_ms']} ms",
                    f"{offer} ms",
                    offer is not None and offer <= TARGETS["create_to_offer_p99_ms"],
                )
            )
    fanout = results.get("fanout")
    if fanout:
        ours, naive = fanout["platform"]["per_second"], fanout["naive"]["per_second"]
        rows.append(
            (
                "Notifications/s delivered to sockets",
                f"≥ {TARGETS['notifications_per_second']:,}",
                f"{ours:,.0f}",
                ours >= TARGETS["notifications_per_second"],
            )
        )
        ratio = ours / naive if naive else None
        rows.append(
            (
                "Against the naive path",
                f"≥ {TARGETS['fanout_ratio']}×",
                f"{ratio:.1f}× ({naive:,.0f}/s)" if ratio else "n/a",
                ratio is not None and ratio >= TARGETS["fanout_ratio"],
            )
        )
    return rows


def figures(results: dict) -> str:
    """The docs' include: the machine, the targets against the figures, each rate's run."""
    m = results["machine"]
    lines = [
        f"Measured {results['finished']} on commit ``{m['commit']}``: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, {m['system']}; "
        f"database {results['database']}; everything on this one machine.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - Target",
        "     - Goal",
        "     - Measured",
        "     - Met",
    ]
    for target, goal, measured, met in verdicts(results):
        lines += [
            f"   * - {target}",
            f"     - {goal}",
            f"     - {measured}",
            f"     - {'yes' if met else 'no'}",
        ]
    fanout = results.get("fanout") or {}
    parts = list(fanout.get("platform", {}).get("cpu_ms_per_notification", {}))
    if parts:
        lines += [
            "",
            "Fan-out: milliseconds of CPU per notification delivered, by process:",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "",
            "   * - Path",
            *[f"     - {part}" for part in parts],
            "     - Total",
        ]
        for mode in ("platform", "naive"):
            cpu = fanout[mode]["cpu_ms_per_notification"]
            lines += [
                f"   * - {mode}",
                *[f"     - {cpu.get(part, 0)}" for part in parts],
                f"     - {round(sum(cpu.values()), 2)}",
            ]
    pipeline = results.get("pipeline")
    if pipeline:
        lines += [
            "",
            "Each rate of the pipeline run (latencies in ms, p50 / p99 / max; lost: sent but never "
            "created, created but never offered, or accepted but the customer never told within "
            "120 s of the end of the rate):",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "",
            "   * - Offered/s",
            "     - Created",
            "     - Lost",
            "     - create→reply",
            "     - create→offer",
            "     - accept→customer",
            "     - Max queue depth",
            "     - Sockets closed by the server",
        ]
        for r in _runs(pipeline):
            lost = r["lost_offers"] + r["lost_accepted"] + r["unanswered"]
            depth = r["max_queue_depth"]
            lines += [
                f"   * - {r['offered_rate']}",
                f"     - {r['created']}",
                f"     - {lost}",
                f"     - {_triple(r['create_to_reply_ms'])}",
                f"     - {_triple(r['create_to_offer_ms'])}",
                f"     - {_triple(r['accept_to_customer_ms'])}",
                f"     - {depth['assignments']} / {depth['notifications']}",
                f"     - {_closed(r)}",
            ]
        parts = list(pipeline["rates"][0].get("cpu_ms_per_pickup", {}))
        if parts:
            lines += [
                "",
                "Where the CPU goes: milliseconds of CPU per pickup offered, by process, over each "
                "rate's run (two cores give 2,000 ms a second in all):",
                "",
                ".. list-table::",
                "   :header-rows: 1",
                "",
                "   * - Offered/s",
                *[f"     - {part}" for part in parts],
                "     - Total",
            ]
            for r in _runs(pipeline):
                cpu = r["cpu_ms_per_pickup"]
                lines += [
                    f"   * - {r['offered_rate']}",
                    *[f"     - {cpu.get(part, 0)}" for part in parts],
                    f"     - {round(sum(cpu.values()), 1)}",
                ]
    return "\n".join(lines) + "\n"


def _runs(pipeline: dict) -> list[dict]:
    """Each rising rate's run, then the run at half the highest sustained rate."""
    return [*pipeline["rates"], *([pipeline["half_rate"]] if pipeline.get("half_rate") else [])]


def _closed(run: dict) -> str:
    closed = run.get("sockets_closed_by_server", {})
    return ", ".join(f"{len(v)} {role}" for role, v in closed.items() if v) or "0"


def _triple(s: dict) -> str:
    return "—" if s["p50"] is None else f"{s['p50']} / {s['p99']} / {s['max']}"
