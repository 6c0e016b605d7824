#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (one per file parser) and runs each for SECONDS
# seconds (default 30), both at once, seeded from the committed fixtures. Fails on any
# crash, sanitizer report, leak, out-of-memory or slow input.
#
#   bash scripts/fuzz.sh 30
#
# The targets are compiled with `swiftc -sanitize=fuzzer,address` directly from the sources the
# parsers need (no BLAS, no LayerNorm; see `sources` below), so no SwiftPM flags change.
# docs/architecture.md says why they are built this way.
# Crashing inputs are kept in .build/fuzz/artifacts/; rerun one with
#   .build/fuzz/<target> .build/fuzz/artifacts/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
out="${FUZZ_OUT:-.build/fuzz}"  # FUZZ_OUT lets a long run keep its own directory
mkdir -p "$out/artifacts"

# What the parsers need, by folder rather than by file, so a new file there is picked up: all of
# Sources/NormKitIO except the layer loaders (*+Loading.swift, which need LayerNorm and BLAS) and the
# half-precision reader (*+Half.swift, which needs HalfTensor and the kernel layer), and
# from NormKit the tensor, the error type, the libm wrappers that Tensor+Random uses and the memory
# budget a stream's read is admitted by. They are compiled as one module, so NormKitIO's copies go
# without their `import NormKit` (-package-name: NormKitIO reaches the core's package-access
# declarations). `import CNormKernels` (the C library, include/nk_platform.h) resolves through a
# module map of that one header: no kernel is compiled or linked.
mkdir -p "$out/src"
rm -f "$out/src/"*.swift
while IFS= read -r f; do
    grep -v '^import NormKit$' "$f" > "$out/src/$(basename "$f")"
done < <(find Sources/NormKitIO -name '*.swift' ! -name '*+Loading.swift' ! -name '*+Half.swift')
mapfile -t sources < <(
    find "$out/src" Sources/NormKit/Tensor -name '*.swift' | sort
    echo Sources/NormKit/NormKitError.swift
    echo Sources/NormKit/Support/Platform.swift
    echo Sources/NormKit/Support/MemoryBudget.swift
)
mkdir -p "$out/cmodule"
printf 'module CNormKernels {\n    header "%s"\n    export *\n}\n' "$PWD/Sources/CNormKernels/include/nk_platform.h" \
    > "$out/cmodule/module.modulemap"
targets=(safetensors npy)
declare -A main=([safetensors]=Fuzz/SafeTensorsFuzz.swift [npy]=Fuzz/NPYFuzz.swift)
declare -A seeds=([safetensors]='*.safetensors' [npy]='*.npy')

build() {
    local name=$1
    # The linker's "cannot export local symbol __asan_*" warnings are noise: keep the log.
    if ! swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name NormKitFuzz -package-name NormKit -I "$out/cmodule" \
        "${sources[@]}" "${main[$name]}" -o "$out/$name" >"$out/$name.build.log" 2>&1; then
        grep -v "Cannot export local symbol" "$out/$name.build.log" >&2
        echo "fuzz: building $name failed" >&2
        return 1
    fi
}

run() {
    local name=$1
    local corpus="$out/corpus-$name"
    # A fresh corpus each run: libFuzzer adds inputs to it, never to the fixtures.
    rm -rf "$corpus" && mkdir -p "$corpus"
    # shellcheck disable=SC2086
    cp Tests/NormKitTests/Fixtures/${seeds[$name]} "$corpus/"
    if ! "$out/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -dict="Fuzz/$name.dict" -artifact_prefix="$out/artifacts/$name-" -print_final_stats=1 \
        "$corpus" >"$out/$name.log" 2>&1; then
        tail -n 60 "$out/$name.log" >&2
        echo "fuzz: $name FAILED (input saved under $out/artifacts/, log $out/$name.log)" >&2
        return 1
    fi
    local runs
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$name.log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz: $name clean: $runs inputs in ${seconds} s ($(grep -c . <(ls "$corpus")) corpus files)"
}

echo "fuzz: building ${targets[*]} (swiftc -O -sanitize=fuzzer,address)"
pids=()
for t in "${targets[@]}"; do build "$t" & pids+=($!); done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "$status" -eq 0 ] || exit 1

echo "fuzz: running each target for ${seconds} s"
pids=()
for t in "${targets[@]}"; do run "$t" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit "$status"
