// libFuzzer target for the safetensors reader, built by scripts/fuzz.sh directly from the
// NormKit and NormKitIO sources it needs (no BLAS, no LayerNorm), so internal invariants are visible.
//
// Any input must either be refused with a NormKitError or be a file whose every
// float tensor converts, whose names are consistent, and which survives an F32
// rewrite bit for bit. A trap, a sanitizer report or a leak is a bug.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    let file: SafeTensors
    do { file = try SafeTensors(data: data) } catch { return 0 }

    precondition(file.names == file.names.sorted(), "names must be sorted")
    _ = file.normLayerNames
    if let names = try? GPT2.normLayerNames(in: file) {
        precondition(names.count % 2 == 1, "GPT-2 has 2n + 1 norm layers")
    }
    var tensors: [String: Tensor] = [:]
    for name in file.names {
        guard let info = file.info(named: name) else { preconditionFailure("\(name) listed without an entry") }
        do {
            let t = try file.tensor(named: name)
            precondition(t.shape == info.shape, "\(name): shape \(t.shape) != header \(info.shape)")
            tensors[name] = t
        } catch {
            // Only a non-float dtype, a scalar or a float64 beyond Float's range may be refused
            // once the header is valid.
            guard case .unsupported = error else { preconditionFailure("\(name): \(error)") }
        }
    }
    // Rewrite the readable tensors as F32 and read them back: the same bits, the same metadata.
    let encoded: Data
    do { encoded = try SafeTensors.encode(tensors, metadata: file.metadata) } catch { preconditionFailure("encode: \(error)") }
    let again: SafeTensors
    do { again = try SafeTensors(data: encoded) } catch { preconditionFailure("re-read of our own file: \(error)") }
    precondition(again.names == tensors.keys.sorted() && again.metadata == file.metadata, "round trip changed the header")
    for (name, t) in tensors {
        guard let u = try? again.tensor(named: name) else { preconditionFailure("\(name) lost in the round trip") }
        precondition(u.shape == t.shape && u.scalars.map(\.bitPattern) == t.scalars.map(\.bitPattern),
                     "\(name) changed in the round trip")
    }
    return 0
}
