#!/usr/bin/env bash
# Builds the DocC catalog (Sources/NormKit/NormKit.docc) against NormKit's symbol graph
# with warnings as errors: a broken symbol link or an undocumented parameter fails.
# Uses the toolchain's docc; no plugin dependency reaches NormKit's users.
set -euo pipefail
cd "$(dirname "$0")/.."
graphs=$(mktemp -d)
out=$(mktemp -d)
trap 'rm -rf "$graphs" "$out"' EXIT
swift build --target NormKit --scratch-path .build-docs \
    -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$graphs" >/dev/null
docc convert Sources/NormKit/NormKit.docc --additional-symbol-graph-dir "$graphs" \
    --fallback-display-name NormKit --fallback-bundle-identifier org.normkit.NormKit \
    --output-path "$out" --warnings-as-errors
echo "check-docs: DocC catalog builds without warnings"
