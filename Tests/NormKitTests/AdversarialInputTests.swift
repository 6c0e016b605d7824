// Issue 13's adversarial pass, the library side: inputs that crashed, stalled, or got an
// unclear or disagreeing answer (docs/reliability.md lists each with its test). The
// command line's side is scripts/cli-tests.sh.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
@testable import NormKit
import Testing

@Suite("Reliability: adversarial inputs", .tags(.reliability))
struct AdversarialInputTests {
    private func file(_ tensors: [String: Tensor]) throws -> SafeTensors {
        try SafeTensors(data: SafeTensors.encode(tensors))
    }

    private func isAmbiguous(_ error: any Error) -> Bool {
        guard case let .invalidFile(_, _, reason)? = error as? NormKitError else { return false }
        return reason.contains("ambiguous")
    }

    /// `ln.weight` with `ln.beta` (or `gamma` with `bias`, or both weights) is refused as
    /// ambiguous, by loading and by the name lookup `normkit inspect` uses; one
    /// convention alone loads.
    @Test func mixedParameterConventionsAreAmbiguous() throws {
        let w = try Tensor(shape: [3], scalars: [1, 2, 3]), b = try Tensor(shape: [3], scalars: [4, 5, 6])
        for names in [["ln.weight", "ln.beta"], ["ln.gamma", "ln.bias"], ["ln.weight", "ln.gamma"],
                      ["ln.weight", "ln.bias", "ln.beta"]] {
            let st = try file(Dictionary(uniqueKeysWithValues: names.map { ($0, w) }))
            #expect(throws: (any Error).self, "\(names)") { try LayerNorm(loading: "ln", from: st) }
            #expect { try LayerNorm(loading: "ln", from: st) } throws: { isAmbiguous($0) }
            #expect { try st.normParameterNames(for: "ln") } throws: { isAmbiguous($0) }
        }
        for (wn, bn) in [("weight", "bias"), ("gamma", "beta")] {
            let st = try file(["ln.\(wn)": w, "ln.\(bn)": b])
            let norm = try LayerNorm(loading: "ln", from: st)
            #expect(norm.usesBias && norm.weight == w && norm.bias == b)
            #expect(try st.normParameterNames(for: "ln") == ("ln.\(wn)", "ln.\(bn)"))
        }
    }

    /// An .npy file opened as safetensors says so, instead of a 379 TB header length.
    @Test func npyFileOpenedAsSafetensorsIsNamed() throws {
        let npy = Tensor.randomNormal([2, 3], seed: 1).npyData()
        #expect {
            try SafeTensors(data: npy)
        } throws: { error in
            guard case let .invalidFile(_, offset, reason)? = error as? NormKitError else { return false }
            return offset == 0 && reason.contains("looks like an .npy file")
        }
    }
}
