#!/usr/bin/env python3
"""Latency distribution plots for bench/REPORT.md, from pgate-loadtest's JSON report.

One PNG per workload: latency (µs, log scale) against the percentile, on an axis that
stretches the tail (1/(1-q): 90 %, 99 %, 99.9 %, 99.99 % equally spaced), one line per
target, so a reader sees where the tails part. Usage: plot_latency.py loadtest.json OUTDIR.
Prints the file names it wrote, one per line.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: plot_latency.py loadtest.json OUTDIR", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        report = json.load(f)
    by_workload = {}
    for row in report["results"]:
        if row.get("cdf_us"):
            by_workload.setdefault(row["workload"], []).append(row)
    for workload, rows in by_workload.items():
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        for row in rows:
            pts = [(q, us) for q, us in row["cdf_us"] if q < 1.0]
            xs = [1.0 / (1.0 - q) for q, _ in pts]
            ax.plot(xs, [us for _, us in pts], label=row["target"], linewidth=1.4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000]
        ax.set_xticks(ticks)
        ax.set_xticklabels(["0 %", "50 %", "90 %", "99 %", "99.9 %", "99.99 %"])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (µs)")
        unit = rows[0].get("unit", "")
        ax.set_title(f"{workload}: latency per {unit} ({rows[0]['connections']} connections)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"latency-{workload}.png"
        fig.savefig(f"{sys.argv[2]}/{name}")
        plt.close(fig)
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
