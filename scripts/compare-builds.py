#!/usr/bin/env python3
"""Two builds of normkit-dev against each other, alternating in rounds in one run.

usage: scripts/compare-builds.py BEFORE AFTER CASE... [--rounds R] [--iterations N]

BEFORE and AFTER are normkit-dev binaries (e.g. a worktree of the earlier commit built with
`swift build -c release --product normkit-dev`, and this checkout's). A CASE is
WORKLOAD:SHAPE:THREADS[:DATA], e.g. forward:1,1024,768:1:symmetric or forward-bf16:8,1024,768:1.
Each round runs `normkit-dev bench --json` once with each binary, BEFORE first; the table gives
the median over rounds of each run's median per call, AFTER / BEFORE, AFTER against its own
baseline pass (the memcpy or stream `bench` times in the same run), the share of rows refused on
the sampled shift, and the 1-minute load average at the end of the case.
"""
import argparse
import json
import os
import statistics
import subprocess


def bench(exe, workload, shape, threads, data, iterations):
    cmd = [exe, "bench", "--workload", workload, "--shape", shape, "--threads", threads, "--json",
           "--iterations", str(iterations)]
    if data:
        cmd += ["--data", data]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("cases", nargs="+")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=400)
    a = p.parse_args()
    print("| case | before (us) | after (us) | after / before | after / its baseline | refused on the sampled shift | load |")
    print("|---|---|---|---|---|---|---|")
    for case in a.cases:
        parts = case.split(":")
        if len(parts) not in (3, 4):
            raise SystemExit(f"a case is WORKLOAD:SHAPE:THREADS[:DATA], got {case!r}")
        workload, shape, threads = parts[:3]
        data = parts[3] if len(parts) == 4 else ""
        before, after, base, refused = [], [], [], []
        for _ in range(a.rounds):
            b = bench(a.before, workload, shape, threads, data, a.iterations)
            n = bench(a.after, workload, shape, threads, data, a.iterations)
            before.append(b["median_us"])
            after.append(n["median_us"])
            base.append(n["memcpy_median_us"])
            refused.append(n.get("sampled_refused_fraction") or 0.0)
        mb, ma, mm = statistics.median(before), statistics.median(after), statistics.median(base)
        print(f"| {workload} [{shape}] {threads} thr {data} | {mb:.1f} | {ma:.1f} | {ma / mb:.3f} | {ma / mm:.2f} | "
              f"{max(refused) * 100:.2f}% | {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
