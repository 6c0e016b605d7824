// swift-tools-version: 6.0
// A separate package that depends on NormKit the way any downstream project would:
// proof that the product builds as a dependency and the COpenBLAS module map reaches it.
import PackageDescription

let package = Package(
    name: "Consumer",
    dependencies: [
        .package(name: "NormKit", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "Consumer",
            dependencies: [.product(name: "NormKit", package: "NormKit")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
