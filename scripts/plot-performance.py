#!/usr/bin/env python3
"""Plot GB/s against rows from `normkit-dev bench --json` output, as a standalone SVG.

usage: scripts/plot-performance.py RESULTS.jsonl OUT.svg [--title TEXT]

RESULTS.jsonl holds one `normkit-dev bench --json` object per line (other lines are ignored).
One series per (workload, instruction set, data, threads): NormKit's forward at each
`--isa` and `--data` the file holds (the bench's `isa` and `data` fields), the naive Double reference, and
the memcpy of the same bytes that every bench run times alongside (1 thread, and split
over the run's thread count). x: rows of `dim` floats (log scale); y: GB/s (log scale), counting the
input read once and the output written once (2 x bytes / time). Python standard library
only, so the figure can be rebuilt anywhere.
"""
import json
import math
import sys
from collections import defaultdict

W, H = 880, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 260, 40, 60
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def load(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    runs.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return runs


def series_of(runs):
    series = defaultdict(dict)  # name -> rows -> [gbps]
    for r in runs:
        rows, t = r["rows"], r["threads"]
        name = {"forward": "NormKit forward(into:)", "forward-alloc": "NormKit forward",
                "reference": "naive Double reference"}.get(r["workload"], r["workload"])
        if r["workload"] != "reference":
            tags = [r[k] for k in ("isa", "data") if r.get(k) and r.get(k) != "normal"]
            if tags:
                name += f" ({', '.join(tags)})"
        series[f"{name}, {t} thread{'s' if t > 1 else ''}"].setdefault(rows, []).append(r["gbps"])
        series["memcpy, 1 thread"].setdefault(rows, []).append(r["memcpy_gbps"])
        if r.get("memcpy_parallel_gbps") is not None:
            series[f"memcpy, {t} threads"].setdefault(rows, []).append(r["memcpy_parallel_gbps"])
    # Median per point (several runs may share a row count, e.g. the memcpy of each run).
    out = {}
    for name, pts in series.items():
        out[name] = sorted((rows, sorted(v)[len(v) // 2]) for rows, v in pts.items())
    return out


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plot(series, title, dim):
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = math.log10(min(xs)), math.log10(max(xs))
    if x1 == x0:
        x1 = x0 + 1
    # Log scale on both axes: memcpy of a cache-resident row runs at 100+ GB/s, the
    # naive reference at 1 GB/s, NormKit in between.
    y0 = math.floor(math.log10(min(ys)))
    y1 = math.ceil(math.log10(max(ys)))
    if y1 == y0:
        y1 = y0 + 1
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x):
        return LEFT + (math.log10(x) - x0) / (x1 - x0) * pw

    def sy(y):
        return TOP + ph - (math.log10(y) - y0) / (y1 - y0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT + pw / 2}" y="22" text-anchor="middle" font-size="14">{esc(title)}</text>']
    # Grid and axes.
    for e in range(y0, y1 + 1):
        for m in (1, 2, 5):
            y = m * 10 ** e
            if 10 ** y0 <= y <= 10 ** y1:
                out.append(f'<line x1="{LEFT}" y1="{sy(y):.1f}" x2="{LEFT + pw}" y2="{sy(y):.1f}" stroke="#ddd"/>')
                out.append(f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for e in range(math.floor(x0), math.ceil(x1) + 1):
        for m in (1, 2, 5):
            x = m * 10 ** e
            if 10 ** x0 <= x <= 10 ** x1:
                out.append(f'<line x1="{sx(x):.1f}" y1="{TOP}" x2="{sx(x):.1f}" y2="{TOP + ph}" stroke="#eee"/>')
                if m == 1:  # label powers of ten only: 2 and 5 would collide at the right end
                    out.append(f'<text x="{sx(x):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 18}" text-anchor="middle">rows of {dim} floats (log scale)</text>')
    out.append(f'<text transform="translate(18,{TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'GB/s, log scale (2 x bytes / time)</text>')
    # Series, NormKit first, memcpy dashed.
    order = sorted(series, key=lambda n: (n.startswith("memcpy"), n.startswith("naive"), n))
    for i, name in enumerate(order):
        c = COLORS[i % len(COLORS)]
        pts = series[name]
        dash = ' stroke-dasharray="5,4"' if name.startswith("memcpy") else ""
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{c}"/>')
        ly = TOP + 10 + i * 20
        out.append(f'<line x1="{LEFT + pw + 12}" y1="{ly}" x2="{LEFT + pw + 36}" y2="{ly}" stroke="{c}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{LEFT + pw + 42}" y="{ly + 4}">{esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    args = sys.argv[1:]
    title = "LayerNorm forward throughput"
    if "--title" in args:
        i = args.index("--title")
        title = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    runs = load(args[0])
    if not runs:
        sys.exit(f"{args[0]}: no `normkit-dev bench --json` lines")
    dims = sorted({r["dim"] for r in runs})
    with open(args[1], "w") as f:
        f.write(plot(series_of(runs), title, ", ".join(map(str, dims))))
    print(f"wrote {args[1]} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
