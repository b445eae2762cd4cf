"""Turn the runner's results into docs: Markdown tables, JSON, the epoch bar chart and the scaling plot."""
from __future__ import annotations

import json
from pathlib import Path

from mlpx._io import atomic_write, atomic_write_text
from mlpx.study.plot import _figure  # an Agg figure without pyplot's global state (dpi 100)


def _fmt_ratio(value) -> str:
    return "" if value is None else f"{value:.2f}x"


def table_markdown(results: dict) -> str:
    """The main table: seconds per epoch, samples per second, ratios to mlpx NumPy (SGD) and to the BLAS floor."""
    lines = ["| system | s/epoch (median) | spread (min-max) | samples/s | vs mlpx NumPy | vs BLAS floor | "
             "vs floor, paired rounds | vs floor, best rounds |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    floor_min = next((r["min_s"] for r in results["table"] if r["name"] == "blas-floor" and "min_s" in r), None)
    notes = []
    for row in results["table"]:
        label = row.get("label", row["name"])
        if "median_s" not in row:
            why = row.get("unavailable") or row.get("failed") or "not run"
            lines.append(f"| {label} | not run: {why} | | | | | | |")
            continue
        if row.get("scaled"):
            label += " (*)"
            notes.append(f"(*) {row['name']}: timed on {row['samples']} samples per round and scaled to "
                         f"{results['train_samples']} (a full epoch of it takes too long).")
        lines.append(f"| {label} | {row['median_s']:.3f} | {row['min_s']:.3f}-{row['max_s']:.3f} "
                     f"({100 * row['spread']:.0f}%) | {row['samples_per_s']:,.0f} | "
                     f"{_fmt_ratio(row['ratio_to_mlpx'])} | {_fmt_ratio(row['ratio_to_floor'])} | "
                     f"{_fmt_ratio(row.get('ratio_to_floor_paired'))} | "
                     f"{_fmt_ratio(row['min_s'] / floor_min if floor_min else None)} |")
    notes.append("Paired rounds: median over rounds of the system's epoch over the floor's epoch of the same round "
                 "(the machine's speed drifts between rounds; a pair is timed seconds apart).")
    notes.append("Best rounds: fastest round of the system over fastest round of the floor (interference from other "
                 "processes only ever adds time, so minima are the least disturbed estimate).")
    return "\n".join(lines + [""] + notes)


def slower_than_peers(results: dict) -> list[str]:
    """Every row that beats mlpx NumPy (SGD), said plainly."""
    lines = []
    for row in results["table"]:
        ratio = row.get("ratio_to_mlpx")
        if ratio is not None and ratio < 1.0 and row["name"] not in ("mlpx-numpy", "blas-floor"):
            lines.append(f"- mlpx NumPy is slower than {row.get('label', row['name'])}: "
                         f"{1 / ratio:.2f}x its epoch time.")
    return lines


def tta_markdown(tta: dict) -> str:
    lines = [f"Target {100 * tta['target']:.0f}% test accuracy, optimizer {tta['optimizer']}, batch {tta['batch']}; "
             f"{tta['note']}.", "", "| system | epochs | training seconds | test accuracy then |",
             "|---|---:|---:|---:|"]
    for name, reached in tta["reached"].items():
        if reached is None:
            last = tta["curves"][name][-1]
            lines.append(f"| {name} | not reached in {last['epoch']} | - | {last['test_accuracy']:.4f} |")
        else:
            lines.append(f"| {name} | {reached['epochs']} | {reached['seconds']:.2f} | "
                         f"{reached['test_accuracy']:.4f} |")
    return "\n".join(lines)


def scaling_markdown(scaling: dict) -> str:
    points = {(p["system"], p["batch"], p["width"]): p["samples_per_s"] for p in scaling["points"]}
    systems = scaling["systems"]
    head = "| " + " | ".join(["batch", "width", *[f"{s} samples/s" for s in systems]])
    if len(systems) == 2:
        head += f" | {systems[0]} / {systems[1]}"
    lines = [head + " |", "|" + "---:|" * (len(systems) + 2 + (len(systems) == 2))]
    keys = sorted({(b, w) for _, b, w in points}, key=lambda k: (k[1] != 1.0, k[1], k[0]))
    for batch, width in keys:
        values = [points.get((s, batch, width)) for s in systems]
        cells = [f"{v:,.0f}" if v else "-" for v in values]
        if len(systems) == 2 and all(values):
            cells.append(f"{values[0] / values[1]:.2f}")
        lines.append(f"| {batch} | x{width:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", scaling["note"] + "."])


def machine_markdown(results: dict) -> str:
    m = results.get("machine") or {}
    lines = [f"- CPU: {m.get('cpu')} ({m.get('logical_cpus')} logical CPUs; SIMD {', '.join(m.get('simd', []))}); "
             f"memory {m.get('memory_gib')} GiB", f"- OS: {m.get('os')}; Python {m.get('python')}; "
             f"NumPy {m.get('numpy')}",
             f"- Threads: {results['threads']} for every system (threadpoolctl; torch.set_num_threads)",
             f"- Unset for this run: {', '.join(results.get('env_unset') or []) or 'nothing'}; "
             f"set: {results.get('env_set') or 'none of ' + 'OPENBLAS_*/OMP/MKL/XLA variables'}"]
    for blas in m.get("blas", []):
        lines.append(f"- NumPy BLAS: {blas.get('internal_api')} {blas.get('version')}, kernel "
                     f"{blas.get('architecture')}, {blas.get('threading_layer')}, {blas.get('num_threads')} threads")
    for row in results["table"]:
        info = row.get("info")
        if info:
            extra = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("notes", "version"))
            lines.append(f"- {row['name']}: version {info.get('version')}{'; ' + extra if extra else ''}; "
                         f"{info.get('notes', '')}")
    return "\n".join(lines)


def foreign_sentence(results: dict) -> str:
    loads = [x for x in results.get("foreign_cores_per_round") or [] if x is not None]
    if not loads:
        return ""
    return (f"Other processes on the machine kept {min(loads):.2f}-{max(loads):.2f} cores busy during the timed "
            f"rounds (0 = a quiet machine).")


def full_markdown(results: dict) -> str:
    parts = ["# Side-by-side benchmark: one training epoch", "",
             f"Network {'-'.join(map(str, results['network']))}, float32, batch {results['batch']}, SGD lr "
             f"{results['lr']}, {results['train_samples']} training samples ({results['data']}). Median of "
             f"{results['rounds']} interleaved rounds after {results['warmup']} warm-up epoch(s), each system in "
             f"its own process. Run {results['date_utc']} at commit {results['git_commit']} with "
             f"`{results['command']}` ({results['total_seconds']:.0f} s in all). {foreign_sentence(results)}", "",
             table_markdown(results)]
    slower = slower_than_peers(results)
    parts += ["", "Where mlpx is slower: " + ("none in this table." if not slower else ""), *slower]
    if "time_to_accuracy" in results:
        parts += ["", "## Time to 97% test accuracy", "", tta_markdown(results["time_to_accuracy"])]
    if "scaling" in results:
        parts += ["", "## Scaling: samples per second", "", "![scaling](scaling.png)", "",
                  scaling_markdown(results["scaling"])]
    parts += ["", "## Machine and systems", "", machine_markdown(results), "", "![epoch times](epoch_bar.png)", ""]
    return "\n".join(parts)


def bar_chart(results: dict, path: Path) -> None:
    rows = [r for r in results["table"] if "median_s" in r]
    rows.sort(key=lambda r: r["median_s"])
    fig = _figure(8, 0.45 * len(rows) + 1.4)
    ax = fig.subplots()
    names = [r["name"] + (" (*)" if r.get("scaled") else "") for r in rows]
    medians = [r["median_s"] for r in rows]
    errors = [[r["median_s"] - r["min_s"] for r in rows], [r["max_s"] - r["median_s"] for r in rows]]
    colors = ["tab:blue" if r["name"].startswith("mlpx") else "tab:gray" if r["name"] == "blas-floor"
              else "tab:orange" for r in rows]
    ax.barh(names, medians, xerr=errors, color=colors, capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per epoch (log scale; median, bars min-max)")
    ax.set_title(f"One epoch of {'-'.join(map(str, results['network']))}, batch {results['batch']}, "
                 f"{results['threads']} threads")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))   # 1, 2, 5, 10, 20, 50 s: readable on a log axis
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    for y, (value, row) in enumerate(zip(medians, rows)):
        ax.text(row["max_s"] * 1.06, y, f"{value:.2f} s", va="center", fontsize=8)
    ax.set_xlim(right=max(r["max_s"] for r in rows) * 1.6)
    ax.invert_yaxis()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def scaling_plot(scaling: dict, path: Path) -> None:
    fig = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    for system in scaling["systems"]:
        pts = [p for p in scaling["points"] if p["system"] == system]
        by_batch = sorted((p["batch"], p["samples_per_s"]) for p in pts if p["width"] == 1.0)
        by_width = sorted((p["width"], p["samples_per_s"]) for p in pts if p["batch"] == 64)
        left.plot(*zip(*by_batch), marker="o", label=system)
        right.plot(*zip(*by_width), marker="o", label=system)
    left.set(xscale="log", yscale="log", xlabel="batch size", ylabel="training samples per second",
             title="Batch size (784-500-250-100-10)")
    left.set_xticks(scaling["batches"], [str(b) for b in scaling["batches"]])
    right.set(xscale="log", yscale="log", xlabel="hidden-width multiplier", ylabel="training samples per second",
              title="Width (hidden sizes x0.5 .. x4, batch 64)")
    right.set_xticks(scaling["widths"], [f"x{w:g}" for w in scaling["widths"]])
    from matplotlib.ticker import NullFormatter

    for ax in (left, right):
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def write_all(results: dict, out: Path) -> list[Path]:
    """compare.json, compare.md, epoch_bar.png and (with the study) scaling.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "compare.json", out / "compare.md", out / "epoch_bar.png"]
    atomic_write_text(paths[0], json.dumps(results, indent=1, default=str))
    atomic_write_text(paths[1], full_markdown(results))
    bar_chart(results, paths[2])
    if "scaling" in results:
        paths.append(out / "scaling.png")
        scaling_plot(results["scaling"], paths[-1])
    return paths
