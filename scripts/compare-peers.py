#!/usr/bin/env python3
"""NormKit against PyTorch (and onnxruntime, when installed) on one kind of workload, in the same session.

usage: scripts/compare-peers.py [--kind KIND | --backward] [--rounds R] [--threads 1,2]
                                [--shapes 1,1,768 1,1024,768 8,1024,768] [--normkit PATH (normkit-dev)]
                                [--json OUT.json] [--markdown OUT.md]

For each thread count and shape, R rounds alternate: the peers' timing scripts (scripts/peers/), then
`normkit-dev bench --json` (which times a memcpy, or for backward a stream of the same bytes, in the same run).
Each tool reports a median per call; the table gives the median over rounds of each, the ratio
NormKit / peer, and NormKit / baseline. Peers are measuring sticks only: one that is not installed is
skipped (bash scripts/install-peers.sh installs them).

KIND is a kind of scripts/peers/torch_norm_workloads.py (default sym). NormKit is timed on the same
distributions: `normkit-dev bench --data symmetric` (U[-2, 2)), `--data rand` (U[0, 1)), `--data offset`
(100 + N(0, 1)); --isa LEVEL passes `--isa LEVEL` to every NormKit run. backward and backward-native are `normkit-dev bench --backward` (PyTorch through autograd,
or its native_layer_norm_backward alone; --backward is short for --kind backward-native). onnxruntime is
timed for sym, rand and offset (scripts/peers/ort_layernorm.py). rms, rmsback, addnorm, addrms, group and
groupback are the bench workloads rms, rms-backward, add-layernorm, add-rms, group and group-backward (32 groups
over axis 1: --shapes 2,320,64,64); bf16, f16, addnorm-bf16 and rms-bf16 are forward-bf16, forward-f16,
add-layernorm-bf16 (half x, float32 weight and bias) and rms-bf16 (NORMKIT_WORKLOADS below); each NormKit run's
baseline is the one `normkit-dev bench` names (a memcpy, or a pass that streams the bytes the call must move).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TORCH_SCRIPT = os.path.join(HERE, "peers", "torch_norm_workloads.py")
ORT_SCRIPT = os.path.join(HERE, "peers", "ort_layernorm.py")
ORT_KINDS = ("sym", "rand", "offset")

# KIND -> (`normkit-dev bench` workload names to try, in order; extra bench arguments).
NORMKIT_WORKLOADS = {
    "sym": (["forward"], ["--data", "symmetric"]),
    "rand": (["forward"], ["--data", "rand"]),
    "offset": (["forward"], ["--data", "offset"]),
    "backward": (["backward"], []),
    "backward-native": (["backward"], []),
    "rms": (["rms", "rms-forward"], []),
    "rmsback": (["rms-backward", "rmsback"], []),
    "addnorm": (["add-forward", "addnorm", "add-layernorm"], []),
    "addrms": (["add-rms", "addrms"], []),
    "group": (["group"], ["--data", "symmetric"]),
    "groupback": (["group-backward"], []),
    "bf16": (["forward-bf16"], ["--data", "symmetric"]),
    "f16": (["forward-f16"], ["--data", "symmetric"]),
    "addnorm-bf16": (["add-layernorm-bf16"], []),
    "rms-bf16": (["rms-bf16"], ["--data", "symmetric"]),
}


def have(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def parse_lines(out, key):
    """{shape: median_us} from lines `kind K shape S <key> MEDIAN reps N`."""
    result = {}
    for line in out.splitlines():
        parts = line.split()
        fields = dict(zip(parts[0::2], parts[1::2]))
        if "shape" in fields and key in fields:
            result[fields["shape"]] = float(fields[key])
    return result


def run_peer(peer, kind, threads, shapes):
    script, key = (TORCH_SCRIPT, "torch_us") if peer == "torch" else (ORT_SCRIPT, "ort_us")
    cmd = [sys.executable, script, str(threads), kind, *shapes]
    return parse_lines(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout, key)


def normkit_workload(binary, kind):
    """The `normkit-dev bench` workload for KIND, or None when this build has none."""
    names, _ = NORMKIT_WORKLOADS[kind]
    help_text = subprocess.run([binary, "bench", "--help"], capture_output=True, text=True, check=True).stdout
    # swift-argument-parser lists an enum option's values as "(values: a, b, c)".
    after = help_text.split("--workload", 1)[-1]
    listed = after.split("(values:", 1)[-1].split(")", 1)[0] if "(values:" in after else ""
    listed = listed.split(";", 1)[0]  # "...; default: forward"
    available = {w.strip() for w in " ".join(listed.split()).split(",")}
    return next((n for n in names if n in available), None)


ISA = []


def run_normkit(binary, workload, extra, threads, shape):
    cmd = [binary, "bench", "--workload", workload, *extra, *ISA, "--shape", shape, "--threads", str(threads), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def load1():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", default="sym", choices=sorted(NORMKIT_WORKLOADS))
    ap.add_argument("--backward", action="store_true", help="the same as --kind backward-native")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--shapes", nargs="+", default=["1,1,768", "1,1024,768", "8,1024,768"])
    ap.add_argument("--normkit", default=os.path.join(ROOT, ".build", "release", "normkit-dev"))
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--markdown", help="write the table here too")
    ap.add_argument("--isa", help="the kernels' instruction-set level for NormKit (normkit-dev bench --isa)")
    args = ap.parse_args()
    if args.isa:
        ISA.extend(["--isa", args.isa])
    kind = "backward-native" if args.backward else args.kind

    workload = normkit_workload(args.normkit, kind)
    if workload is None:
        sys.exit(f"compare-peers: {args.normkit} has no bench workload for kind '{kind}' "
                 f"(tried {', '.join(NORMKIT_WORKLOADS[kind][0])})")
    extra = NORMKIT_WORKLOADS[kind][1]

    peers = []
    if have("torch"):
        peers.append("torch")
    if kind in ORT_KINDS and have("onnxruntime") and have("onnx") and have("numpy"):
        peers.append("ort")
    if not peers:
        print("note: no peer installed (bash scripts/install-peers.sh); timing NormKit and its baseline only",
              file=sys.stderr)

    records = []
    loads = [load1()]
    for threads in [int(t) for t in args.threads.split(",")]:
        for r in range(args.rounds):
            for peer in peers:
                for shape, us in run_peer(peer, kind, threads, args.shapes).items():
                    records.append({"tool": peer, "threads": threads, "shape": shape, "round": r, "median_us": us})
            for shape in args.shapes:
                d = run_normkit(args.normkit, workload, extra, threads, shape)
                records.append({"tool": "normkit", "threads": threads, "shape": shape, "round": r,
                                "median_us": d["median_us"], "memcpy_us": d["memcpy_median_us"], "raw": d})
            loads.append(load1())
            print(f"threads {threads} round {r + 1}/{args.rounds} done, load {loads[-1]}", file=sys.stderr)

    def med(tool, threads, shape, key="median_us"):
        v = [x[key] for x in records if x["tool"] == tool and x["threads"] == threads and x["shape"] == shape]
        return statistics.median(v) if v else None

    names = {"torch": "PyTorch", "ort": "onnxruntime"}
    # The baseline `normkit-dev bench` timed in the same runs, as it names it (memcpy, a stream pass, ...).
    base = next((x["raw"].get("baseline", "baseline") for x in records if x["tool"] == "normkit"), "baseline")
    head = f"| shape | threads | NormKit (us) | {base} 1 thread (us) | NormKit / {base} |"
    sep = "|---|---|---|---|---|"
    for p in peers:
        head += f" {names[p]} (us) | NormKit / {names[p]} |"
        sep += "---|---|"
    lines = [head, sep]
    for threads in [int(t) for t in args.threads.split(",")]:
        for shape in args.shapes:
            nk, mc = med("normkit", threads, shape), med("normkit", threads, shape, "memcpy_us")
            row = f"| [{shape.replace(',', ', ')}] | {threads} | {nk:.3f} | {mc:.3f} | {nk / mc:.2f} |"
            for p in peers:
                pv = med(p, threads, shape)
                row += f" {pv:.3f} | {nk / pv:.2f} |" if pv else " - | - |"
            lines.append(row)
    known = [l for l in loads if l is not None]
    lines.append("")
    note = f"Kind {kind} (normkit-dev bench --workload {workload} {' '.join(extra)}). "
    if known:
        note += (f"Medians over {args.rounds} alternating rounds; 1-minute load average during the run: "
                 f"{min(known):.2f} to {max(known):.2f}.")
    lines.append(note)
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kind": kind, "workload": workload, "records": records, "loads": loads, "peers": peers},
                      f, indent=1)


if __name__ == "__main__":
    main()
