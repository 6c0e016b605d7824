#!/usr/bin/env python3
"""Median time per call of onnxruntime's CPU LayerNormalization (opset 17, float32, eps 1e-5).

usage: scripts/peers/ort_layernorm.py THREADS KIND SHAPE [SHAPE ...]
       e.g. scripts/peers/ort_layernorm.py 1 sym 1,1,768 1,1024,768 8,1024,768

KIND is the data, as in scripts/peers/torch_norm_workloads.py: sym (x ~ U[-2, 2)), rand (U[0, 1)) or
offset (100 + N(0, 1)); weight ~ U[0.5, 1.5), bias ~ U[-0.1, 0.1). onnxruntime has no LayerNorm backward.
One session per shape (intra-op threads THREADS, inter-op 1, CPUExecutionProvider); each `run` is timed on
its own after warm-up, for about a second per shape (30 to 20000 calls). Prints per shape:
  kind KIND shape SHAPE ort_us MEDIAN reps N
Needs numpy, onnx and onnxruntime (scripts/install-peers.sh).
"""
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

KINDS = ("sym", "rand", "offset")


def session(shape, threads):
    d = shape[-1]
    node = helper.make_node("LayerNormalization", ["x", "w", "b"], ["y"], axis=-1, epsilon=1e-5)
    graph = helper.make_graph(
        [node], "layernorm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [d]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def inputs(kind, shape, rng):
    d = shape[-1]
    if kind == "rand":
        x = rng.random(shape)
    elif kind == "offset":
        x = 100 + rng.standard_normal(shape)
    else:
        x = rng.random(shape) * 4 - 2
    return {"x": x.astype(np.float32),
            "w": (rng.random(d) + 0.5).astype(np.float32),
            "b": (rng.random(d) * 0.2 - 0.1).astype(np.float32)}


def median_us(call, budget_s=1.0):
    for _ in range(5):
        call()
    t0 = time.perf_counter_ns()
    call()
    estimate = max((time.perf_counter_ns() - t0) / 1e9, 1e-7)
    reps = max(30, min(20000, int(budget_s / estimate)))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return statistics.median(samples), reps


def main(argv):
    if len(argv) < 4:
        raise SystemExit(__doc__)
    threads, kind, shapes = int(argv[1]), argv[2], argv[3:]
    if kind not in KINDS:
        raise SystemExit(f"unknown kind '{kind}'; one of {', '.join(KINDS)}")
    rng = np.random.default_rng(0)
    for arg in shapes:
        shape = [int(s) for s in arg.split(",")]
        sess, feed = session(shape, threads), inputs(kind, shape, rng)
        us, reps = median_us(lambda: sess.run(None, feed))
        print(f"kind {kind} shape {arg} ort_us {us:.3f} reps {reps}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
