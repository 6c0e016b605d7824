#!/usr/bin/env python3
"""Writes the committed test fixtures in Tests/NormKitTests/Fixtures with the reference
implementations (pip: numpy, safetensors), so NormKit's readers are tested on files the
real writers produced, not only on files NormKit wrote itself.

    pip install numpy safetensors && python3 scripts/make-fixtures.py

Deterministic (seeded); the tests need only the committed files, never Python.
Every value a test checks is either written here in closed form (so the Swift test can
recompute it) or stored in an "expected" fixture computed in float64 by NumPy.
"""
import os

import numpy as np
import safetensors
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "NormKitTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)


def path(name):
    return os.path.join(OUT, name)


# ---------------------------------------------------------------- .npy
# Values the Swift tests know: f(i) = (i - 2.5) * 0.75 for the element with flat C index i.
def ramp(shape, dtype):
    n = int(np.prod(shape))
    return ((np.arange(n, dtype=np.float64) - 2.5) * 0.75).reshape(shape).astype(dtype)


np.save(path("f4_2x3.npy"), ramp((2, 3), "<f4"))                # version 1.0, the common case
np.save(path("f8_2x3.npy"), ramp((2, 3), "<f8"))
np.save(path("f2_2x3.npy"), ramp((2, 3), "<f2"))
np.save(path("f4_be_2x3.npy"), ramp((2, 3), ">f4"))             # big-endian
np.save(path("f8_be_2x3.npy"), ramp((2, 3), ">f8"))
np.save(path("f2_be_2x3.npy"), ramp((2, 3), ">f2"))
np.save(path("f4_fortran_2x3x4.npy"), np.asfortranarray(ramp((2, 3, 4), "<f4")))
np.save(path("f4_empty_0x4.npy"), np.zeros((0, 4), "<f4"))
np.save(path("f4_scalar.npy"), np.array(1.5, "<f4"))            # 0-d: refused by NormKit
np.save(path("i8_3.npy"), np.arange(3, dtype="<i8"))            # not a float: refused
for version in [(2, 0), (3, 0)]:
    with open(path(f"f4_v{version[0]}_2x3.npy"), "wb") as f:
        np.lib.format.write_array(f, ramp((2, 3), "<f4"), version=version)

# Special values through half precision: a subnormal, the largest half, infinity, -0.
np.save(path("f2_special.npy"), np.array([2.0**-24, 65504.0, np.inf, -0.0], "<f2"))

# ---------------------------------------------------------------- safetensors, dtypes
save_file(
    {
        "a_f32": ramp((2, 3), np.float32),
        "b_f16": ramp((2, 3), np.float16),
        "c_f64": ramp((2, 3), np.float64),
        "d_i64": np.arange(3, dtype=np.int64),            # listed, not converted
        "e_scalar": np.array(1.5, np.float32),            # shape []: listed, not converted
        "f_empty": np.zeros((0, 3), np.float32),
    },
    path("dtypes.safetensors"),
    metadata={"format": "np"},
)

# BF16 has no NumPy dtype: pass the raw bits (the top halves of float32s) to the
# reference serializer. The ramp values are exact in bfloat16.
bits = (ramp((2, 3), np.float32).view(np.uint32) >> 16).astype("<u2")
safetensors.serialize_file(
    {"w": safetensors.TensorSpec(dtype="bfloat16", shape=list(bits.shape), data_ptr=bits.ctypes.data, data_len=bits.nbytes)},
    path("bf16.safetensors"),
)

# F32 only, as NormKit writes: the test checks NormKit's writer is byte-identical.
save_file(
    {"x": ramp((2, 3), np.float32), "y.bias": ramp((4,), np.float32), "z": ramp((1, 1, 2), np.float32)},
    path("writer_reference.safetensors"),
    metadata={"format": "pt"},
)

# ---------------------------------------------------------------- GPT-2-named checkpoints
# The real GPT-2 small layout (12 blocks, eps 1e-5) at dim 8 instead of 768, with some of
# the non-norm tensors GPT-2 files hold, so name filtering is exercised. Layer k in model
# order (h.0.ln_1 = 0, h.0.ln_2 = 1, ..., ln_f = 24) has
#     weight[j] = 1 + k/64 + j/256,   bias[j] = k/8 - j/32     (exact in float32).
BLOCKS, DIM = 12, 8
rng = np.random.default_rng(5)


def norm_params(k):
    j = np.arange(DIM, dtype=np.float64)
    return (1 + k / 64 + j / 256).astype(np.float32), (k / 8 - j / 32).astype(np.float32)


def gpt2_tensors(prefix, extra_per_block):
    t = {}
    names = [f"h.{i}.ln_{n}" for i in range(BLOCKS) for n in (1, 2)] + ["ln_f"]
    for k, name in enumerate(names):
        w, b = norm_params(k)
        t[f"{prefix}{name}.weight"], t[f"{prefix}{name}.bias"] = w, b
    t[f"{prefix}wte.weight"] = rng.standard_normal((16, DIM)).astype(np.float32)
    t[f"{prefix}wpe.weight"] = rng.standard_normal((4, DIM)).astype(np.float32)
    for i in range(BLOCKS):
        for suffix, shape in extra_per_block:
            t[f"{prefix}h.{i}.{suffix}"] = np.asarray(0.02 * rng.standard_normal(shape), dtype=np.float32)
    return t


# As Hugging Face's gpt2/model.safetensors names them (GPT2Model: no prefix), with the
# causal-mask buffer attn.bias (a ".bias" without a ".weight") and Conv1D biases.
plain = gpt2_tensors("", [("attn.bias", (1, 1, 2, 2)), ("attn.c_attn.bias", (3 * DIM,)), ("mlp.c_proj.bias", (DIM,))])
save_file(plain, path("gpt2_small_shaped.safetensors"), metadata={"format": "pt"})

# As a GPT2LMHeadModel state dict names them: "transformer." prefixes, a tied lm_head,
# and the old scalar attn.masked_bias buffer (shape []).
prefixed = gpt2_tensors("transformer.", [("attn.masked_bias", ())])
prefixed["lm_head.weight"] = prefixed["transformer.wte.weight"].copy()
save_file(prefixed, path("gpt2_lmhead_prefixed.safetensors"), metadata={"format": "pt"})

# Activations for `apply`, GPT-2-like (unit noise plus one huge channel), and the float64
# LayerNorm of them with h.0.ln_1's parameters, rounded to float32.
x = rng.standard_normal((2, 3, DIM))
x[..., 3] = 300 * (1 + 0.1 * x[..., 3])
x = x.astype(np.float32)
np.save(path("gpt2_activations.npy"), x)
w, b = norm_params(0)
x64 = x.astype(np.float64)
mean = x64.mean(-1, keepdims=True)
var = ((x64 - mean) ** 2).mean(-1, keepdims=True)
y = (x64 - mean) / np.sqrt(var + 1e-5) * w.astype(np.float64) + b.astype(np.float64)
np.save(path("gpt2_h0_ln1_expected.npy"), y.astype(np.float32))

# ---------------------------------------------------------------- Llama-named checkpoints
# Hugging Face's LlamaForCausalLM names (3 decoder layers, dim 8, RMSNorm: weights only),
# in F32, F16 and BF16. Norm layer k in model order (model.layers.0.input_layernorm = 0,
# model.layers.0.post_attention_layernorm = 1, ..., model.norm = 6) has
#     weight[j] = 1 + k/32 + j/128     (exact in float32, float16 and bfloat16).
LLAMA_LAYERS = 3


def llama_weight(k):
    return (1 + k / 32 + np.arange(DIM, dtype=np.float64) / 128).astype(np.float32)


def llama_tensors(prefix):
    t = {f"{prefix}embed_tokens.weight": rng.standard_normal((16, DIM)).astype(np.float32)}
    k = 0
    for i in range(LLAMA_LAYERS):
        for name in ("input_layernorm", "post_attention_layernorm"):
            t[f"{prefix}layers.{i}.{name}.weight"] = llama_weight(k)
            k += 1
        for proj in ("self_attn.q_proj", "self_attn.k_proj", "mlp.down_proj"):
            t[f"{prefix}layers.{i}.{proj}.weight"] = (0.02 * rng.standard_normal((DIM, DIM))).astype(np.float32)
    t[f"{prefix}norm.weight"] = llama_weight(k)
    return t


llama = llama_tensors("model.")
llama["lm_head.weight"] = llama["model.embed_tokens.weight"].copy()
save_file(llama, path("llama_f32.safetensors"), metadata={"format": "pt"})
save_file({k: v.astype(np.float16) for k, v in llama.items()}, path("llama_f16.safetensors"), metadata={"format": "pt"})
# BF16: the top halves of the float32 bits (truncation; the norm weights are exact).
bf16_bits = {k: (np.ascontiguousarray(v).view(np.uint32) >> 16).astype("<u2") for k, v in llama.items()}
safetensors.serialize_file(
    {k: safetensors.TensorSpec(dtype="bfloat16", shape=list(b.shape), data_ptr=b.ctypes.data, data_len=b.nbytes)
     for k, b in bf16_bits.items()},
    path("llama_bf16.safetensors"),
    metadata={"format": "pt"},
)
# LlamaModel names: no "model." prefix.
save_file(llama_tensors(""), path("llama_model_unprefixed.safetensors"), metadata={"format": "pt"})

# Activations for `apply --kind rms`, with one massive channel, and the float64 RMSNorm of
# them with model.layers.0.input_layernorm (eps 1e-5), rounded to float32.
x = rng.standard_normal((2, 3, DIM))
x[..., 5] = 400 * (1 + 0.1 * x[..., 5])
x = x.astype(np.float32)
np.save(path("llama_activations.npy"), x)
x64 = x.astype(np.float64)
y = x64 / np.sqrt((x64 ** 2).mean(-1, keepdims=True) + 1e-5) * llama_weight(0).astype(np.float64)
np.save(path("llama_l0_input_rms_expected.npy"), y.astype(np.float32))

for name in sorted(os.listdir(OUT)):
    print(f"{os.path.getsize(path(name)):7d}  {name}")
