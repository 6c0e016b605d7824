#!/usr/bin/env python3
"""Median time per call of PyTorch's CPU LayerNorm backward (float32, eps 1e-5), to compare with NormKit's.

usage: torch_layernorm_backward_speed.py THREADS SHAPE [SHAPE ...]     e.g. 1 8,1024,768
Prints one line per shape: `shape S torch_us MEDIAN reps N`, like /work/shared/peers/torch_layernorm_speed.py.

Times `torch.ops.aten.native_layer_norm_backward` directly (dx, dweight and dbias, the same three outputs
NormKit's `backward` returns) with the mean and rstd that `native_layer_norm` saved, so neither autograd's
graph bookkeeping nor the forward pass is in the figure. Inputs as in `normkit bench --workload backward`:
x ~ N(0, 2), dy ~ N(0, 1), weight ~ N(1, 0.2), bias ~ N(0, 0.1). Run it alternately with `normkit bench`
in the same session and compare ratios: absolute times drift on a shared machine.
"""
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
for arg in sys.argv[2:]:
    shape = [int(s) for s in arg.split(",")]
    n = 1
    for s in shape:
        n *= s
    d = shape[-1]
    x = torch.randn(*shape) * 2
    dy = torch.randn(*shape)
    w = torch.randn(d) * 0.2 + 1
    b = torch.randn(d) * 0.1
    _, mean, rstd = torch.ops.aten.native_layer_norm(x, [d], w, b, 1e-5)
    mask = [True, True, True]

    def call():
        return torch.ops.aten.native_layer_norm_backward(dy, x, [d], mean, rstd, w, b, mask)

    reps = max(30, min(20000, 200_000_000 // max(n, 1)))
    for _ in range(5):
        call()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        call()
        t.append((time.perf_counter_ns() - t0) / 1e3)
    t.sort()
    print(f"shape {arg} torch_us {t[len(t) // 2]:.3f} reps {reps}")
