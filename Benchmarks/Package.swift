// swift-tools-version: 6.1
//
// NormKit's benchmarks (ordo-one/package-benchmark): wall clock and mallocs of the
// LayerNorm forward pass at the shapes that matter, on one thread and on all cores.
// A nested package so the top-level `swift build` never builds the benchmark tooling.
//
//     cd Benchmarks
//     swift package benchmark                                   # run, print a table
//     swift package benchmark thresholds check                  # compare with Thresholds/
//     swift package --allow-writing-to-package-directory benchmark thresholds update
//
// See docs/performance.md.
import PackageDescription

let package = Package(
    name: "NormKitBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "NormKit", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "LayerNormBenchmarks",
            dependencies: [
                .product(name: "NormKit", package: "NormKit"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/LayerNormBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
