#!/usr/bin/env python3
"""Median time per call of PyTorch's CPU norms (float32), to compare with `normkit-dev bench`.

usage: scripts/peers/torch_norm_workloads.py THREADS KIND SHAPE [SHAPE ...]
       e.g. scripts/peers/torch_norm_workloads.py 1 sym 1,1,768 1,1024,768 8,1024,768

KIND (the data and the call timed; LayerNorm eps 1e-5, RMSNorm eps 1e-6, weight ~ U[0.5, 1.5),
bias ~ U[-0.1, 0.1)):
  sym             F.layer_norm, x ~ U[-2, 2)  (mean well below the spread)
  rand            F.layer_norm, x ~ U[0, 1)   (torch.rand: mean 1.7 times the spread)
  offset          F.layer_norm, x = 100 + N(0, 1)
  backward        autograd gradients of F.layer_norm for x, weight and bias (x ~ U[-2, 2), dy ~ U[-1, 1))
  backward-native aten.native_layer_norm_backward from the saved mean and rstd (the same three
                  gradients without autograd's bookkeeping)
  rms             F.rms_norm, x ~ U[-2, 2)
  rmsback         autograd gradients of F.rms_norm for x and weight
  addnorm         h.add_(x) then F.layer_norm(h): the residual add and the norm, as eager PyTorch runs them
  addrms          h.add_(x) then F.rms_norm(h)
  group           F.group_norm with 32 groups over axis 1 (shape N,C,H,W; weight and bias [C]), x ~ U[-2, 2)
  groupback       autograd gradients of F.group_norm for x, weight and bias
  bf16, f16       F.layer_norm on x ~ U[-2, 2) in bfloat16 / float16 with float32 weight and bias (the mixed case)
  addnorm-bf16    h.add_(x) then F.layer_norm(h), x and h bfloat16, weight and bias float32
  rms-bf16        F.rms_norm on x ~ U[-2, 2) in bfloat16 with a bfloat16 weight (the dtype PyTorch's fused
                  kernel takes; a float32 weight falls back to its composite path)

Each call is timed on its own with time.perf_counter_ns, after warm-up, for about a second per shape
(30 to 20000 calls); the line printed per shape is
  kind KIND shape SHAPE torch_us MEDIAN reps N
Absolute times drift on a shared machine: run it alternately with `normkit-dev bench` in one session and compare
ratios (scripts/compare-peers.py does that).
"""
import statistics
import sys
import time

import torch

F = torch.nn.functional
KINDS = ("sym", "rand", "offset", "backward", "backward-native", "rms", "rmsback", "addnorm", "addrms", "group",
         "groupback", "bf16", "f16", "addnorm-bf16", "rms-bf16")


def symmetric(shape):
    return torch.rand(*shape) * 4 - 2


def make_call(kind, shape):
    """The zero-argument function one timed call runs, with its inputs built here."""
    if kind in ("group", "groupback"):
        c = shape[1]
        x, w, b = symmetric(shape), torch.rand(c) + 0.5, torch.rand(c) * 0.2 - 0.1
        if kind == "group":
            return lambda: F.group_norm(x, 32, w, b, 1e-5)
        for t in (x, w, b):
            t.requires_grad_(True)
        y, dy = F.group_norm(x, 32, w, b, 1e-5), torch.rand(*shape) * 2 - 1
        return lambda: torch.autograd.grad(y, (x, w, b), dy, retain_graph=True)
    d = shape[-1]
    w = torch.rand(d) + 0.5
    b = torch.rand(d) * 0.2 - 0.1
    if kind == "rand":
        x = torch.rand(*shape)
    elif kind == "offset":
        x = 100 + torch.randn(*shape)
    else:
        x = symmetric(shape)

    if kind in ("bf16", "f16"):
        xh = x.to(torch.bfloat16 if kind == "bf16" else torch.float16)
        return lambda: F.layer_norm(xh, (d,), w, b, 1e-5)
    if kind == "rms-bf16":
        xh, wh = x.to(torch.bfloat16), w.to(torch.bfloat16)
        return lambda: F.rms_norm(xh, (d,), wh, 1e-6)
    if kind == "addnorm-bf16":
        xh, h = x.to(torch.bfloat16), symmetric(shape).to(torch.bfloat16)

        def add_then_norm_bf16():
            h.add_(xh)
            return F.layer_norm(h, (d,), w, b, 1e-5)
        return add_then_norm_bf16
    if kind in ("sym", "rand", "offset"):
        return lambda: F.layer_norm(x, (d,), w, b, 1e-5)
    if kind == "rms":
        return lambda: F.rms_norm(x, (d,), w, 1e-6)
    if kind in ("backward", "rmsback"):
        x.requires_grad_(True)
        w.requires_grad_(True)
        dy = torch.rand(*shape) * 2 - 1
        if kind == "backward":
            b.requires_grad_(True)
            y, wrt = F.layer_norm(x, (d,), w, b, 1e-5), (x, w, b)
        else:
            y, wrt = F.rms_norm(x, (d,), w, 1e-6), (x, w)
        return lambda: torch.autograd.grad(y, wrt, dy, retain_graph=True)
    if kind == "backward-native":
        dy = torch.rand(*shape) * 2 - 1
        _, mean, rstd = torch.ops.aten.native_layer_norm(x, [d], w, b, 1e-5)
        mask = [True, True, True]
        return lambda: torch.ops.aten.native_layer_norm_backward(dy, x, [d], mean, rstd, w, b, mask)
    if kind in ("addnorm", "addrms"):
        h = symmetric(shape)
        if kind == "addnorm":
            def add_then_norm():
                h.add_(x)
                return F.layer_norm(h, (d,), w, b, 1e-5)
        else:
            def add_then_norm():
                h.add_(x)
                return F.rms_norm(h, (d,), w, 1e-6)
        return add_then_norm
    raise SystemExit(f"unknown kind '{kind}'; one of {', '.join(KINDS)}")


def median_us(call, budget_s=1.0):
    """The median of single-call timings in microseconds, and how many calls were timed."""
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
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for arg in shapes:
        shape = [int(s) for s in arg.split(",")]
        us, reps = median_us(make_call(kind, shape))
        print(f"kind {kind} shape {arg} torch_us {us:.3f} reps {reps}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
