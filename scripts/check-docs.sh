#!/usr/bin/env bash
# Builds the DocC catalogs of the three libraries (Sources/NormKit/NormKit.docc,
# Sources/NormKitIO/NormKitIO.docc and Sources/NormKitTesting/NormKitTesting.docc)
# against their symbol graphs with warnings
# as errors: a broken symbol link or an undocumented parameter fails.
# Uses the toolchain's docc; no plugin dependency reaches NormKit's users.
set -euo pipefail
cd "$(dirname "$0")/.."
graphs=$(mktemp -d)
out=$(mktemp -d)
trap 'rm -rf "$graphs" "$out"' EXIT
# Two builds emit the three modules' graphs (NormKitIO and NormKitTesting each depend on
# NormKit); each catalog is converted against its own module's graph only.
for target in NormKitIO NormKitTesting; do
    swift build --target "$target" --scratch-path .build-docs \
        -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$graphs/all" >/dev/null
done
for module in NormKit NormKitIO NormKitTesting; do
    mkdir -p "$graphs/$module"
    cp "$graphs/all/$module".symbols.json "$graphs/all/$module"@*.symbols.json "$graphs/$module/" 2>/dev/null || true
    docc convert "Sources/$module/$module.docc" --additional-symbol-graph-dir "$graphs/$module" \
        --fallback-display-name "$module" --fallback-bundle-identifier "org.normkit.$module" \
        --output-path "$out/$module" --warnings-as-errors
done
echo "check-docs: DocC catalogs build without warnings"
