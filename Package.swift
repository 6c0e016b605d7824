// swift-tools-version: 6.0
//
// NormKit: an exact, fast float32 Layer Normalization for Swift on Linux and macOS,
// computed with OpenBLAS.
import PackageDescription

let package = Package(
    name: "NormKit",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "NormKit", targets: ["NormKit"]),
        // Test support: the float64 reference and the hard-row catalogue, for NormKit's
        // tests and for downstream packages that test their use of NormKit against it.
        .library(name: "NormKitTesting", targets: ["NormKitTesting"]),
        .executable(name: "normkit", targets: ["NormKitCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The C boundary: OpenBLAS's cblas.h and LAPACKE through a module map.
        // No unsafeFlags anywhere, so the package can be used as a dependency.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Modules/COpenBLAS",
            pkgConfig: "openblas",
            providers: [
                .apt(["libopenblas-dev", "liblapacke-dev"]),
                .brew(["openblas"]),
            ]
        ),
        // The kernel layer: element-wise loops written once in C (clang vector
        // extensions) and compiled per instruction set through per-function target
        // attributes, chosen at run time (docs/architecture.md). No flags.
        .target(
            name: "CNormKernels",
            path: "Sources/CNormKernels"
        ),
        .target(
            name: "NormKit",
            dependencies: [
                "CNormKernels",
                .target(name: "COpenBLAS", condition: .when(platforms: [.linux, .android, .windows])),
            ],
            path: "Sources/NormKit"
        ),
        .target(
            name: "NormKitTesting",
            dependencies: ["NormKit"],
            path: "Sources/NormKitTesting"
        ),
        // The `normkit` command. Not named like its product: `normkit` and `NormKit` would be
        // one folder and one module file on a case-insensitive file system (macOS's default).
        .executableTarget(
            name: "NormKitCLI",
            dependencies: [
                "NormKit",
                "NormKitTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/NormKitCLI"
        ),
        // scripts/leak-check.sh: a long loop of NormKit calls, run under valgrind and
        // checked for resident-memory growth. Not a product; dependents never build it.
        .executableTarget(
            name: "normkit-leakcheck",
            dependencies: ["NormKit", "NormKitTesting"],
            path: "Sources/normkit-leakcheck"
        ),
        .testTarget(
            name: "NormKitTests",
            dependencies: ["NormKit", "NormKitTesting"],
            path: "Tests/NormKitTests",
            // Read through #filePath (Tests/NormKitTests/SafeTensorsTests.swift), not bundled.
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
