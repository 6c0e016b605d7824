// swift-tools-version: 6.0
// A separate package that depends on NormKit the way any downstream project would:
// proof that the three library products build as dependencies and the COpenBLAS module map
// reaches them. ReleaseCheck checks the optimised build's kernels (CI runs both with -c release).
import PackageDescription

let package = Package(
    name: "Consumer",
    dependencies: [
        .package(name: "NormKit", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "Consumer",
            dependencies: [
                .product(name: "NormKit", package: "NormKit"),
                .product(name: "NormKitIO", package: "NormKit"),
                .product(name: "NormKitTesting", package: "NormKit"),
            ]
        ),
        // The optimised kernels against float64 and their own contracts, at every
        // instruction-set level (the test suite runs a debug build).
        .executableTarget(
            name: "ReleaseCheck",
            dependencies: [
                .product(name: "NormKit", package: "NormKit"),
                .product(name: "NormKitTesting", package: "NormKit"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
