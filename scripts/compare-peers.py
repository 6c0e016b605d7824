#!/usr/bin/env python3
"""NormKit's LayerNorm forward (or backward) against PyTorch's (and onnxruntime's, when installed), same session.

usage: scripts/compare-peers.py [--backward] [--rounds R] [--threads 1,2] [--shapes 1,1,768 1,1024,768 8,1024,768]
                                [--normkit PATH] [--json OUT.json] [--markdown OUT.md] [--torch-script PATH]

For each thread count and shape, R rounds alternate: the peers' timing scripts, then
`normkit bench --json` (which times a memcpy of the same bytes in the same run). Each tool
reports a median per call; the table gives the median over rounds of each, the ratio
NormKit / peer, and NormKit / memcpy. Peers are measuring sticks only: a peer that is not
installed is skipped (PyTorch: bash /work/shared/peers/install-torch.sh or `pip install
torch`; onnxruntime: `pip install onnxruntime`).

With --backward: `normkit bench --backward` (whose baseline streams the bytes backward must
move: reads x and dy, writes dx) against PyTorch's native_layer_norm_backward, timed by
scripts/torch_layernorm_backward_speed.py; onnxruntime has no LayerNorm backward.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TORCH_SCRIPT = "/work/shared/peers/torch_layernorm_speed.py"
TORCH_BACKWARD_SCRIPT = os.path.join(HERE, "torch_layernorm_backward_speed.py")

# onnxruntime's LayerNormalization (opset 17), timed the way the torch script times torch.
ORT_SNIPPET = r"""
import sys, time, numpy as np, onnxruntime as ort
from onnx import helper, TensorProto
threads = int(sys.argv[1])
for arg in sys.argv[2:]:
    shape = [int(s) for s in arg.split(",")]
    d = shape[-1]
    x = (np.random.rand(*shape) * 4 - 2).astype(np.float32)
    w = (np.random.rand(d) + 0.5).astype(np.float32)
    b = (np.random.rand(d) * 0.2 - 0.1).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "w", "b"], ["y"], axis=-1, epsilon=1e-5)
    graph = helper.make_graph([node], "ln",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [d]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {"x": x, "w": w, "b": b}
    n = x.size
    reps = max(30, min(20000, 400_000_000 // max(n, 1)))
    for _ in range(3): sess.run(None, feed)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter_ns(); sess.run(None, feed); t.append((time.perf_counter_ns() - t0) / 1e3)
    t.sort()
    print(f"shape {arg} ort_us {t[len(t) // 2]:.3f} reps {reps}")
"""


def have(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def run_peer(kind, threads, shapes):
    if kind == "torch":
        cmd = [sys.executable, TORCH_SCRIPT, str(threads), *shapes]
    else:
        cmd = [sys.executable, "-c", ORT_SNIPPET, str(threads), *shapes]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "shape":
            result[parts[1]] = float(parts[3])
    return result


def run_normkit(binary, threads, shape, backward=False):
    cmd = [binary, "bench", "--shape", shape, "--threads", str(threads), "--json"] + (["--backward"] if backward else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def load1():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def main():
    global TORCH_SCRIPT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backward", action="store_true",
                    help="time backward (PyTorch: scripts/torch_layernorm_backward_speed.py; no onnxruntime)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--shapes", nargs="+", default=["1,1,768", "1,1024,768", "8,1024,768"])
    ap.add_argument("--normkit", default=os.path.join(ROOT, ".build", "release", "normkit"))
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--markdown", help="write the table here too")
    ap.add_argument("--torch-script", default=None,
                    help="the PyTorch timing script (prints `shape S torch_us MEDIAN reps N`; default: the shared "
                         "forward script, or with --backward scripts/torch_layernorm_backward_speed.py)")
    args = ap.parse_args()
    TORCH_SCRIPT = args.torch_script or (TORCH_BACKWARD_SCRIPT if args.backward else TORCH_SCRIPT)

    peers = []
    if have("torch") and os.path.exists(TORCH_SCRIPT):
        peers.append("torch")
    if not args.backward and have("onnxruntime") and have("onnx"):
        peers.append("ort")
    if not peers:
        print("note: no peer installed (torch, onnxruntime); timing NormKit and memcpy only", file=sys.stderr)

    records = []
    loads = [load1()]
    for threads in [int(t) for t in args.threads.split(",")]:
        for r in range(args.rounds):
            for peer in peers:
                for shape, us in run_peer(peer, threads, args.shapes).items():
                    records.append({"tool": peer, "threads": threads, "shape": shape, "round": r, "median_us": us})
            for shape in args.shapes:
                d = run_normkit(args.normkit, threads, shape, args.backward)
                records.append({"tool": "normkit", "threads": threads, "shape": shape, "round": r,
                                "median_us": d["median_us"], "memcpy_us": d["memcpy_median_us"], "raw": d})
            loads.append(load1())
            print(f"threads {threads} round {r + 1}/{args.rounds} done, load {loads[-1]}", file=sys.stderr)

    def med(tool, threads, shape, key="median_us"):
        v = [x[key] for x in records if x["tool"] == tool and x["threads"] == threads and x["shape"] == shape]
        return statistics.median(v) if v else None

    names = {"torch": "PyTorch", "ort": "onnxruntime"}
    base = "stream x+dy->dx" if args.backward else "memcpy"
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
    lines.append(("Backward. " if args.backward else "") + f"Medians over {args.rounds} alternating rounds; 1-minute load average during the run: "
                 f"{min(known):.2f} to {max(known):.2f}." if known else "")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"records": records, "loads": loads, "peers": peers}, f, indent=1)


if __name__ == "__main__":
    main()
