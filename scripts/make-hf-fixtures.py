#!/usr/bin/env python3
"""Writes Tests/NormKitTests/Fixtures/hf_rmsnorm.safetensors: Hugging Face's RMSNorm cast
orders, computed by PyTorch on CPU in bfloat16 and float16, for RMSNorm.halfRounding.

    pip install torch safetensors && python3 scripts/make-hf-fixtures.py

The two modules are written out here with plain torch ops, as transformers writes them
(no transformers import):

- LlamaRMSNorm: h = x.float(); h = h * rsqrt(mean(h²) + eps); return w * h.to(dtype),
  with w in the half dtype (a half × half product, rounded once to the half type);
- GemmaRMSNorm: out = norm(x.float()) * (1 + w.float()); return out.type_as(x).

Deterministic (seeded). For each dtype T in (bf16, f16) the file holds x_T [rows, dim],
w_T [dim], llama_T and gemma_T [rows, dim], and for the fused residual add r_T (a stream) and
sum_T = x_T + r_T (PyTorch's half add: computed in float, rounded once), all of dtype T; eps is 1e-6.
"""
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "NormKitTests", "Fixtures")
EPS = 1e-6
ROWS, DIM = 32, 96


def llama(x, w):
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + EPS)
    return w * h.to(x.dtype)


def gemma(x, w):
    h = x.float()
    out = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
    out = out * (1.0 + w.float())
    return out.type_as(x)


g = torch.Generator().manual_seed(18)
tensors = {}
for name, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
    # Rows with a spread of scales (activations of a few units, a few outliers), weights near 1.
    scale = torch.exp(torch.randn(ROWS, 1, generator=g))
    x = (torch.randn(ROWS, DIM, generator=g) * scale).to(dtype)
    w = (1 + 0.3 * torch.randn(DIM, generator=g)).to(dtype)
    tensors[f"x_{name}"] = x
    tensors[f"w_{name}"] = w
    tensors[f"llama_{name}"] = llama(x, w)
    tensors[f"gemma_{name}"] = gemma(x, w)
    r = (torch.randn(ROWS, DIM, generator=g) * 3 * scale).to(dtype)
    tensors[f"r_{name}"] = r
    tensors[f"sum_{name}"] = x + r
save_file(tensors, os.path.join(OUT, "hf_rmsnorm.safetensors"))
print("wrote", os.path.join(OUT, "hf_rmsnorm.safetensors"), sorted(tensors))
