#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import NormKitTesting

// Normalise a [2, 4, 768] activation tensor and check it against the reference.
let x = Tensor.randomNormal([2, 4, 768], mean: 3, standardDeviation: 5, seed: 1)
let norm = try LayerNorm(dim: 768)
let y = try norm(x)
let error = Reference.maxRowError(y, expected: try Reference.layerNormDouble(x))

let first = y.scalars.prefix(768)
let mean = first.reduce(0.0) { $0 + Double($1) } / 768
let variance = first.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 768
print("Consumer: LayerNorm(dim: 768) on \(x.shape): row 0 mean \(mean), variance \(variance), max error \(error)")
guard error <= 1e-6, abs(mean) < 1e-5, abs(variance - 1) < 1e-3 else {
    print("Consumer: FAILED")
    exit(1)
}
print("Consumer: OK")
