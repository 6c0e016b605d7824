#!/usr/bin/env bash
# Memory check: a long loop of NormKit calls (`normkit-dev leak-check`,
# Sources/NormKitDevTools/LeakCheck: forward,
# backward fresh and accumulating, a parallel forward/backward on the worker pool,
# safetensors and .npy encode/parse in memory and on disk, and every error path) must
#   1. not grow resident memory after warm-up (LEAK_ITERATIONS, default 20000, ~7 s),
#   2. lose nothing under valgrind memcheck (LEAK_VALGRIND_ITERATIONS, default 150,
#      ~25 s: valgrind runs the pool's threads one at a time): any definitely or
#      indirectly lost block, invalid access or use of an uninitialised value fails the run.
# Each check first runs with --inject-leak and must FAIL then, so a check that can no
# longer see a leak is itself an error. Without valgrind (and no way to install it),
# step 2 falls back to LeakSanitizer on an address-sanitized build.
# Before both (Linux): the calls documented as allocation-free make no allocation at
# all, counted per call by scripts/malloc-counter.c (preloaded; the RSS check cannot see
# a leak under a few hundred bytes per iteration, the counter sees one malloc).
set -euo pipefail
cd "$(dirname "$0")/.."

iterations=${LEAK_ITERATIONS:-20000}
valgrind_iterations=${LEAK_VALGRIND_ITERATIONS:-150}

echo "== leak check: build"
# The release build the README's demo command makes (.ci/run runs that first), so only the
# dev tool's own target compiles here.
swift build -c release --product normkit-dev
bin=(.build/release/normkit-dev leak-check)

if [ "$(uname -s)" = Linux ]; then
    echo "== allocation check: the allocation-free calls make no malloc (scripts/malloc-counter.c preloaded)"
    counter_dir=$(mktemp -d)
    "$(command -v clang || command -v cc)" -O2 -shared -fPIC -o "$counter_dir/libmalloc-counter.so" scripts/malloc-counter.c
    LD_PRELOAD="$counter_dir/libmalloc-counter.so" "${bin[@]}" --count-allocations
    # Without the counter the mode must fail: a check that cannot count never passes.
    if "${bin[@]}" --count-allocations > /dev/null 2>&1; then
        echo "allocation check self-test FAILED: it passed without the counter"
        exit 1
    fi
    rm -rf "$counter_dir"
else
    echo "SKIP allocation check: the counter interposes glibc's malloc (Linux only)"
fi

echo "== leak check: resident memory over $iterations iterations"
if "${bin[@]}" --iterations 2000 --inject-leak > /tmp/normkit-leakcheck-selftest.log 2>&1; then
    cat /tmp/normkit-leakcheck-selftest.log
    echo "leak check self-test FAILED: an injected leak did not grow resident memory"
    exit 1
fi
"${bin[@]}" --iterations "$iterations"

if ! command -v valgrind > /dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
    apt-get install -y -qq valgrind > /dev/null 2>&1 || { apt-get update -qq > /dev/null && apt-get install -y -qq valgrind > /dev/null; } || true
fi

if command -v valgrind > /dev/null 2>&1; then
    vg=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect
        --show-leak-kinds=definite,indirect --error-exitcode=9)
    # clang writes DWARF 5 for the C kernels, which Debian 12's valgrind 3.19 cannot read (it
    # gives up on the binary): valgrind runs a copy without debug information. Its reports
    # name functions (the symbol table stays), not lines; for lines, rebuild with
    # `-Xcc -gdwarf-4` and run valgrind on that binary.
    strip_tool=$(command -v strip || command -v llvm-strip || true)
    [ -n "$strip_tool" ] || { echo "leak check: no strip or llvm-strip to remove the DWARF 5 valgrind cannot read"; exit 1; }
    vg_dir=$(mktemp -d)
    "$strip_tool" --strip-debug -o "$vg_dir/normkit-dev" "${bin[0]}"
    bin=("$vg_dir/normkit-dev" leak-check)
    echo "== leak check: valgrind memcheck over $valgrind_iterations iterations"
    status=0
    "${vg[@]}" "${bin[@]}" --iterations 5 --inject-leak --no-rss > /tmp/normkit-leakcheck-selftest.log 2>&1 || status=$?
    if [ "$status" != 9 ]; then
        cat /tmp/normkit-leakcheck-selftest.log
        echo "leak check self-test FAILED: valgrind did not report an injected leak (exit $status)"
        exit 1
    fi
    "${vg[@]}" "${bin[@]}" --iterations "$valgrind_iterations" --no-rss
    rm -rf "$vg_dir"
else
    echo "== leak check: valgrind unavailable; LeakSanitizer over $valgrind_iterations iterations"
    swift build -c release --product normkit-dev --sanitize=address --scratch-path .build-leak-asan
    asan_bin=(.build-leak-asan/release/normkit-dev leak-check)
    if ASAN_OPTIONS=detect_leaks=1 "${asan_bin[@]}" --iterations 5 --inject-leak --no-rss > /tmp/normkit-leakcheck-selftest.log 2>&1; then
        echo "leak check self-test FAILED: LeakSanitizer did not report an injected leak"
        exit 1
    fi
    ASAN_OPTIONS=detect_leaks=1 "${asan_bin[@]}" --iterations "$valgrind_iterations" --no-rss
fi
echo "== leak check: clean"
