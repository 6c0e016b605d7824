// swift-tools-version: 6.0
//
// NormKit: exact, fast float32 LayerNorm and RMSNorm for Swift on Linux and macOS.
// Products: NormKit (the norms, tensors and threads; no file parsers, no Foundation),
// NormKitIO (safetensors, .npy, checkpoint layer names, loading a norm from a file),
// NormKitTesting (the float64 references and hard rows) and the `normkit` command.
// docs/architecture.md draws the targets.
import PackageDescription

let package = Package(
    name: "NormKit",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "NormKit", targets: ["NormKit"]),
        // Checkpoint and array files: safetensors, .npy, GPT-2 and Llama layer names.
        .library(name: "NormKitIO", targets: ["NormKitIO"]),
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
            name: "NormKitIO",
            dependencies: ["NormKit"],
            path: "Sources/NormKitIO"
        ),
        .target(
            name: "NormKitTesting",
            dependencies: ["NormKit"],
            path: "Sources/NormKitTesting"
        ),
        // What both commands share: flag checks, memory admission, the clock, number
        // formatting, seeded activations. Not a product.
        .target(
            name: "NormKitCLISupport",
            dependencies: [
                "NormKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/NormKitCLISupport"
        ),
        // The shipped `normkit` command (demo, apply, inspect). Not named like its product:
        // `normkit` and `NormKit` would be one folder and one module file on a
        // case-insensitive file system (macOS's default). It does not link NormKitTesting.
        .executableTarget(
            name: "NormKitCLI",
            dependencies: [
                "NormKit",
                "NormKitIO",
                "NormKitCLISupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/NormKitCLI"
        ),
        // `normkit-dev` (accuracy, bench, leak-check): the developer's tool, run from a
        // checkout with `swift run normkit-dev`. Not a product, so dependents never build
        // it and users never install it; it links NormKitTesting's references.
        .executableTarget(
            name: "normkit-dev",
            dependencies: [
                "NormKit",
                "NormKitIO",
                "NormKitTesting",
                "NormKitCLISupport",
                // bench reads the kernel layer's count of rows off the fast path.
                "CNormKernels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/NormKitDevTools"
        ),
        .testTarget(
            name: "NormKitTests",
            dependencies: ["NormKit", "NormKitIO", "NormKitTesting"],
            path: "Tests/NormKitTests",
            // Read through #filePath (Tests/NormKitTests/SafeTensorsTests.swift), not bundled.
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
