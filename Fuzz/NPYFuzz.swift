// libFuzzer target for the .npy reader, built by scripts/fuzz.sh directly from the
// NormKit and NormKitIO sources it needs (no BLAS, no LayerNorm).
//
// Any input must either be refused with a NormKitError or give a tensor whose shape
// matches its header and which survives NormKit's writer bit for bit.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    let header = try? NPYHeader(npyData: data)
    let tensor: Tensor
    do { tensor = try Tensor(npyData: data) } catch { return 0 }

    guard let header else { preconditionFailure("a readable tensor whose header does not parse") }
    precondition(header.shape == tensor.shape, "shape \(tensor.shape) != header \(header.shape)")
    let written: Data
    do { written = try tensor.npyData() } catch { preconditionFailure("the writer refused a tensor its reader gave: \(error)") }
    let again: Tensor
    do { again = try Tensor(npyData: written) } catch { preconditionFailure("re-read of our own file: \(error)") }
    precondition(again.shape == tensor.shape && again.scalars.map(\.bitPattern) == tensor.scalars.map(\.bitPattern),
                 "round trip changed the tensor")
    return 0
}
