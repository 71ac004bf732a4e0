"""results.json, REPORT.md and the plots beside them."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from bench.harness import Result

# Written by hand after a full run: what bounds a goal that is not met, and what was tried.
ANALYSIS = Path(__file__).with_name("analysis.md")


def write(out: Path, results: list[Result], meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps([r.to_json() for r in results], indent=2) + "\n", encoding="utf-8"
    )
    plots = _plots(out, results)
    lines = [
        "# taskstore benchmarks",
        "",
        f"`python -m bench{' --quick' if meta['quick'] else ''}` on {platform.node()} "
        f"({meta['cores']} cores, Python {platform.python_version()}, Redis {meta['redis']}), "
        f"{meta['date']}. Medians of {meta['rounds']} interleaved rounds (ours, peer, ours, ...)"
        " against a Redis the run started for itself.",
        "",
        "| scenario | ours | peer | unit | ratio | goal | met |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for r in results:
        peer = "" if r.peer is None else _fmt(r.peer)
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"| {r.scenario} | {_fmt(r.ours)} | {peer} | {r.unit} | {ratio} | {r.goal} | "
            f"{'yes' if r.met else '**no**'} |"
        )
    details = [r for r in results if r.detail]
    if details:
        lines += ["", "Details:", ""]
        lines += [f"- {r.scenario}: `{json.dumps(r.detail)}`" for r in details]
    lines += [""] + [f"![{name}]({name})" for name in plots]
    if ANALYSIS.exists():
        lines += ["", ANALYSIS.read_text(encoding="utf-8").strip()]
    (out / "REPORT.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _plots(out: Path, results: list[Result]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    paired = [r for r in results if r.peer and r.unit.endswith("/s")]
    if paired:
        fig, ax = plt.subplots(figsize=(10, 0.5 * len(paired) + 1.5))
        labels = [r.scenario for r in paired]
        ax.barh(
            [i + 0.2 for i in range(len(paired))], [r.ours for r in paired], 0.4, label="taskstore"
        )
        ax.barh(
            [i - 0.2 for i in range(len(paired))], [r.peer or 0 for r in paired], 0.4, label="peer"
        )
        ax.set_yticks(range(len(paired)), labels, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("operations per second (log)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=110)
        names.append("throughput.png")
    listing = next((r for r in results if r.scenario.startswith("5.")), None)
    if listing is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, key in (
            ("taskstore list_page(50)", "ours_ms"),
            ("seed: whole index", "seed_ms"),
        ):
            points = sorted((int(k), v) for k, v in listing.detail[key].items())
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records of the owner")
        ax.set_ylabel("ms per page (median)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "listing.png", dpi=110)
        names.append("listing.png")
    plt.close("all")
    return names
