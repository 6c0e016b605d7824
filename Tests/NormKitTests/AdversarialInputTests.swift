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
@testable import NormKitIO
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
        let npy = try Tensor.randomNormal([2, 3], seed: 1).npyData()
        #expect {
            try SafeTensors(data: npy)
        } throws: { error in
            guard case let .invalidFile(_, offset, reason)? = error as? NormKitError else { return false }
            return offset == 0 && reason.contains("looks like an .npy file")
        }
    }

    // MARK: bounds

    /// A tensor of rank 45 000 (valid: one element) prints flat and short; it overflowed
    /// the stack through the recursive printer. Nested tensors print as before.
    @Test func descriptionIsBoundedAtHugeRank() throws {
        let t = try Tensor(shape: [Int](repeating: 1, count: 45_000), scalars: [2.5])
        let text = t.description
        #expect(text.utf8.count < 300)
        #expect(text.hasPrefix("Tensor(flat [2.5], shape: [1, 1, 1, 1, 1, 1, 1, 1, ... 44984 more ..., "))
        #expect(text.hasSuffix("(rank 45000))"))
        let cube = try Tensor(shape: [2, 2, 8], scalars: (0..<32).map(Float.init))
        #expect(cube.description == """
            Tensor([[[0, 1, 2, 3, 4, 5, 6, 7],
                     [8, 9, 10, 11, 12, 13, 14, 15]],
                    [[16, 17, 18, 19, 20, 21, 22, 23],
                     [24, 25, 26, 27, 28, 29, 30, 31]]], shape: [2, 2, 8])
            """)
        let wide = try Tensor(shape: [8, 200], scalars: (0..<1600).map(Float.init))
        #expect(wide.description.hasPrefix("Tensor([[0, 1, 2, ..., 197, 198, 199],\n        [200, 201, 202, ..., 397, 398, 399],\n        [400, "))
        #expect(wide.description.contains("...,\n        [1000, "))
    }

    private func npyHeader(shape dims: [Int], fortran: Bool = false) -> String {
        let tuple = dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.map(String.init).joined(separator: ", ") + ")"
        var h = "{'descr': '<f4', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(tuple), }"
        while (h.utf8.count + 11) % 64 != 0 { h += " " }
        return h + "\n"
    }

    /// Ranks above 64 (NumPy's NPY_MAXDIMS) are refused by both readers; 64 is read.
    @Test func readersRefuseRankAbove64() throws {
        let one: [UInt8] = [0, 0, 0x80, 0x3F]
        let ok = try Tensor(npyData: npyBytes(major: 2, npyHeader(shape: [Int](repeating: 1, count: 64)), one))
        #expect(ok.rank == 64 && ok.scalars == [1])
        for (fortran, rank) in [(false, 65), (true, 65), (true, 200_000)] {
            #expect {
                try Tensor(npyData: npyBytes(major: 2, npyHeader(shape: [Int](repeating: 1, count: rank), fortran: fortran), one))
            } throws: { error in
                guard case let .invalidFile(_, _, reason)? = error as? NormKitError else { return false }
                return reason.contains("'shape' has \(rank) dimensions; at most 64")
            }
        }
        func st(rank: Int) -> Data {
            let dims = [String](repeating: "1", count: rank).joined(separator: ",")
            return safetensorsBytes(Array("{\"t\":{\"dtype\":\"F32\",\"shape\":[\(dims)],\"data_offsets\":[0,4]}}".utf8), one)
        }
        #expect(try SafeTensors(data: st(rank: 64)).tensor(named: "t").rank == 64)
        #expect {
            try SafeTensors(data: st(rank: 65))
        } throws: { error in
            guard case let .invalidFile(_, _, reason)? = error as? NormKitError else { return false }
            return reason.contains("shape has 65 dimensions; at most 64")
        }
    }

    /// Fortran order with axes of length 1 among the others: the transpose skips them
    /// (O(elements)) and still gives C order.
    @Test func fortranOrderWithUnitAxes() throws {
        let shape = [2, 1, 3, 1, 1, 4, 1]
        let n = 24
        // Fortran data: element (i0, i2, i5) at i0 + 2*i2 + 6*i5; C order wants i0*12 + i2*4 + i5.
        var fortran = [Float](repeating: 0, count: n)
        var expected = [Float](repeating: 0, count: n)
        for i0 in 0..<2 { for i2 in 0..<3 { for i5 in 0..<4 {
            let v = Float(100 * i0 + 10 * i2 + i5)
            fortran[i0 + 2 * i2 + 6 * i5] = v
            expected[i0 * 12 + i2 * 4 + i5] = v
        } } }
        let bytes = fortran.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        let t = try Tensor(npyData: npyBytes(npyHeader(shape: shape, fortran: true), bytes))
        #expect(t.shape == shape && t.scalars == expected)
    }

    /// A header dict of 60 000 keys with a duplicate at the end is refused as a duplicate
    /// (the check is one hash per key; it was a scan per key, 15 s).
    @Test func npyHeaderWithManyKeysIsRefusedQuickly() throws {
        var dict = "{"
        for i in 0..<60_000 { dict += "'k\(i)': 0, " }
        dict += "'k7': 0}"
        while (dict.utf8.count + 13) % 64 != 0 { dict += " " }
        #expect {
            try Tensor(npyData: npyBytes(major: 2, dict + "\n"))
        } throws: { error in
            guard case let .invalidFile(_, _, reason)? = error as? NormKitError else { return false }
            return reason.contains("duplicate key 'k7'")
        }
    }

    // MARK: names and statistics

    /// Names that differ only in Unicode normal form (`café` with U+00E9, and with e +
    /// U+0301) are two tensors, as in Python's reader: compared by bytes.
    @Test func namesAreComparedByBytes() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        #expect(nfc == nfd)  // equal as Swift Strings
        let header = "{\"\(nfc)\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            + "\"\(nfd)\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        let file = try SafeTensors(data: safetensorsBytes(Array(header.utf8), [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]))
        #expect(file.names.count == 2)
        #expect(Set(file.names.map { Array($0.utf8) }) == [Array(nfc.utf8), Array(nfd.utf8)])
        #expect(try file.tensor(named: nfc).scalars == [1])
        #expect(try file.tensor(named: nfd).scalars == [2])
        // The same bytes twice are still a duplicate.
        let twice = "{\"\(nfc)\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            + "\"\(nfc)\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        #expect(throws: NormKitError.self) {
            try SafeTensors(data: safetensorsBytes(Array(twice.utf8), [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]))
        }
    }

    /// The statistics forwardForTraining returns for an empty input whose leading
    /// dimensions overflow before the zero (`[3, 2^62, 0, 8]`) are accepted back by the
    /// public initialiser, and backward takes them.
    @Test func zeroElementStatisticsRoundTrip() throws {
        let norm = try LayerNorm(dim: 8)
        let x = try Tensor(shape: [3, 1 << 62, 0, 8], scalars: [])
        let (y, stats) = try norm.forwardForTraining(x)
        #expect(y.shape == x.shape && stats.rowCount == 0)
        let rebuilt = try LayerNorm.Statistics(inputShape: stats.inputShape, means: [], reciprocalStandardDeviations: [])
        let grads = try norm.backward(outputGradient: x, input: x, statistics: rebuilt)
        #expect(grads.input.shape == x.shape)
    }
}
