// swift-tools-version: 6.0
// A separate package that depends on NormKit the way any downstream project would:
// proof that the three library products build as dependencies and the COpenBLAS module map
// reaches them.
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
    ],
    swiftLanguageModes: [.v6]
)
