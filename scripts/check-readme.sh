#!/usr/bin/env bash
# Builds and runs the README's Swift blocks as written, against this checkout.
#
#   bash scripts/check-readme.sh
#
# Every ```swift block of README.md is one of two things:
# - a package manifest (its first line is `// swift-tools-version: ...`): it becomes the manifest of a
#   throwaway package in a temporary directory, with its NormKit dependency pointed at this checkout (by path,
#   through a symlink named NormKit so the package identity is the same), and every target it declares gets a
#   stub source that imports the products it should reach (those its declaration names; NormKit and
#   NormKitTesting for a test target);
# - a program: it becomes main.swift of an executable target added to that package (ReadmeBlock1, ...),
#   depending on the three library products, and is run; it must exit 0.
# The package is built (tests too) and thrown away. Needs only Swift, awk and sed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$root" "$work/NormKit"
pkg="$work/readme"
mkdir -p "$pkg/blocks"

awk -v dir="$pkg/blocks" '
    /^```swift[[:space:]]*$/ { n++; file = sprintf("%s/%02d.swift", dir, n); open = 1; printf "" > file; next }
    /^```/ && open { open = 0; close(file); next }
    open { print >> file }
' "$root/README.md"

manifest="" programs=()
for block in "$pkg"/blocks/*.swift; do
    if head -n 1 "$block" | grep -q '^// swift-tools-version'; then
        [ -z "$manifest" ] || { echo "check-readme: more than one manifest block in README.md" >&2; exit 1; }
        manifest=$block
    else
        programs+=("$block")
    fi
done
[ -n "$manifest" ] || { echo "check-readme: README.md has no Package.swift block" >&2; exit 1; }
[ "${#programs[@]}" -gt 0 ] || { echo "check-readme: README.md has no program block" >&2; exit 1; }

# The manifest, with NormKit from this checkout and the program targets added to its targets.
sed -E 's|\.package\(url: "[^"]*/NormKit"[^)]*\)|.package(path: "../NormKit")|' "$manifest" > "$pkg/Package.swift"
grep -q '\.package(path: "\.\./NormKit")' "$pkg/Package.swift" \
    || { echo "check-readme: the manifest block has no .package(url: \".../NormKit\", ...) line" >&2; exit 1; }
added=""
for i in "${!programs[@]}"; do
    name="ReadmeBlock$((i + 1))"
    added+="        .executableTarget(name: \"$name\", dependencies: [.product(name: \"NormKit\", package: \"NormKit\"), .product(name: \"NormKitIO\", package: \"NormKit\"), .product(name: \"NormKitTesting\", package: \"NormKit\")], path: \"Programs/$name\"),\n"
    mkdir -p "$pkg/Programs/$name"
    cp "${programs[$i]}" "$pkg/Programs/$name/main.swift"
done
sed -i "0,/^    targets: \[\$/s||    targets: [\n$added|" "$pkg/Package.swift"

# Stubs for the manifest's own targets: a regular target imports every NormKit product named
# from its declaration to the next target's (so a product it lists but cannot reach fails).
targets_of() { sed -nE 's/.*\.(target|executableTarget|testTarget)\(name: "([^"]+)".*/\1 \2/p' "$manifest"; }
products_of() {  # the NormKit products named in the declaration of target $1
    awk -v name="$1" '
        /\.(target|executableTarget|testTarget)\(name: "/ { inside = index($0, "name: \"" name "\"") > 0 }
        inside { while (match($0, /product\(name: "[A-Za-z]+", package: "NormKit"\)/)) {
            p = substr($0, RSTART, RLENGTH); sub(/^product\(name: "/, "", p); sub(/".*/, "", p); print p
            $0 = substr($0, RSTART + RLENGTH) } }' "$manifest"
}
targets_of | while read -r kind name; do
    imports=$(products_of "$name" | sort -u | sed 's/^/import /')
    case $kind in
        testTarget) mkdir -p "$pkg/Tests/$name"; printf 'import NormKit\nimport NormKitTesting\n' > "$pkg/Tests/$name/Stub.swift" ;;
        executableTarget) mkdir -p "$pkg/Sources/$name"; printf '%s\n' "${imports:-import NormKit}" > "$pkg/Sources/$name/main.swift" ;;
        *) mkdir -p "$pkg/Sources/$name"; printf '%s\n' "${imports:-import NormKit}" > "$pkg/Sources/$name/Stub.swift" ;;
    esac
done

echo "check-readme: building the manifest block and ${#programs[@]} program block(s)"
# The build log without its progress lines; pipefail keeps swift build's exit status.
(cd "$pkg" && swift build --build-tests 2>&1) | { grep -vE '^\[[0-9]+/[0-9]+\]' || true; }
for i in "${!programs[@]}"; do
    name="ReadmeBlock$((i + 1))"
    echo "check-readme: running $name (README block $(basename "${programs[$i]}" .swift))"
    (cd "$pkg" && "./.build/debug/$name")
done
echo "check-readme: every Swift block of README.md builds and runs"
