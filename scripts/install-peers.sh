#!/usr/bin/env bash
# Installs the peers NormKit's speed is compared with (scripts/compare-peers.py, docs/performance.md), with pip:
# numpy, onnx and onnxruntime, and PyTorch 2.15 for CPU timing. They are measuring sticks only: nothing in the
# package or its tests needs them. What is already importable is left alone.
#
#   bash scripts/install-peers.sh            # PYTHON=python3.12 to pick the interpreter
#
# PyTorch's Linux wheel on PyPI imports only when the CUDA runtime libraries are present, even on a machine
# without a GPU (none is used), so on Linux those come too, pinned to the versions torch 2.15.0 was built
# against: about 3 GB in all.
set -euo pipefail
py=${PYTHON:-python3}
pip_install() { "$py" -m pip install -q --disable-pip-version-check "$@"; }
has() { "$py" -c "import $1" 2>/dev/null; }

for module in numpy onnx onnxruntime; do
    if has "$module"; then echo "install-peers: $module already installed"; else pip_install "$module"; fi
done

if has torch; then
    echo "install-peers: torch $("$py" -c 'import torch; print(torch.__version__)') already installed"
elif [ "$(uname -s)" = Linux ]; then
    wheels=$(mktemp -d)
    trap 'rm -rf "$wheels"' EXIT
    # The wheel without its declared dependencies, then its Python dependencies and the CUDA runtime it loads.
    "$py" -m pip download -q --disable-pip-version-check --no-deps -d "$wheels" torch==2.15.0
    pip_install --no-deps "$wheels"/torch-2.15.0-*.whl
    pip_install filelock fsspec sympy networkx jinja2 \
        "cuda-toolkit[cublas,cudart,nvrtc,cupti,cufft,curand,cusolver,cusparse,nvjitlink,nvtx,cufile]==13.2.2" \
        nvidia-cudnn-cu13==9.26.0.51 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 \
        nvidia-nvshmem-cu13==3.7.2
else
    pip_install torch==2.15.0
fi

"$py" -c 'import torch, onnxruntime, numpy
print("install-peers: torch", torch.__version__, "(CPU capability", torch.backends.cpu.get_cpu_capability() + "),",
      "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)'
