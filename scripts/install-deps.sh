#!/usr/bin/env bash
# Installs the system libraries NormKit links (OpenBLAS, LAPACKE) and pkg-config,
# only when they are missing. Debian/Ubuntu with apt; run as root (or it uses sudo
# when it is there). On macOS: `brew install openblas` (NormKit uses Accelerate there).
set -euo pipefail
packages=(libopenblas-dev liblapacke-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: need ${missing[*]} and there is no apt-get; install them with your package manager" >&2
    exit 1
fi
run=()
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && run=(sudo)
echo "install-deps: installing ${missing[*]}" >&2
"${run[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
