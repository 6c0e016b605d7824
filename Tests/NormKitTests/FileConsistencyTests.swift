// The file formats agree with themselves and with the layers (issue 19, "Consistency"
// and "Hygiene"): a zero-size shape is valid whatever the order of its dimensions; the
// writers never make a file their readers refuse; metadata keys are never merged; a
// layer is reported loadable only when it loads; and a float64 that float32 cannot hold
// is an error unless the caller allows it. docs/reliability.md has a row per class.
import Foundation
import NormKit
import NormKitIO
import Testing

@Suite("Files: consistency")
struct FileConsistencyTests {
    // MARK: zero-size shapes, in any order

    /// Every order of each shape: a zero anywhere makes the count 0, whatever the others.
    static let zeroShapes: [[Int]] = {
        let bases: [[Int]] = [
            [0, Int.max, Int.max], [0, 1 << 40, 1 << 40, 3], [0, Int.max], [0, 2, 3], [0, 0, Int.max],
        ]
        var out: [[Int]] = []
        for base in bases {
            for p in permutations(base) where !out.contains(p) { out.append(p) }
        }
        return out
    }()

    @Test func productOfAZeroSizeShapeIsZeroInAnyOrder() {
        for shape in Self.zeroShapes {
            #expect(Shape.product(shape) == 0, "\(shape)")
        }
        // Without a zero, an overflow is still an overflow in any order.
        for shape in permutations([Int.max, 2, 1]) { #expect(Shape.product(shape) == nil, "\(shape)") }
        #expect(Shape.product([3, 1 << 20, 5]) == 15 << 20)
    }

    @Test func safetensorsReadsEveryZeroSizeShapeItWrites() throws {
        for shape in Self.zeroShapes {
            let t = try Tensor(shape: shape, scalars: [])
            let file = try SafeTensors(data: try SafeTensors.encode(["t": t, "u": Tensor.ones([2])]))
            #expect(file.info(named: "t")?.shape == shape)
            #expect(try file.tensor(named: "t") == t, "\(shape)")
            #expect(try file.tensor(named: "u") == Tensor.ones([2]))
        }
    }

    @Test func npyReadsEveryZeroSizeShapeItWrites() throws {
        for shape in Self.zeroShapes {
            let t = try Tensor(shape: shape, scalars: [])
            let data = try t.npyData()
            #expect(try NPYHeader(npyData: data).shape == shape)
            #expect(try Tensor(npyData: data) == t, "\(shape)")
        }
        // A Fortran-order header of the same shapes (NumPy writes them for transposed arrays).
        for shape in Self.zeroShapes {
            let dims = shape.map(String.init).joined(separator: ", ")
            let header = "{'descr': '<f8', 'fortran_order': True, 'shape': (\(dims)), }\n"
            #expect(try Tensor(npyData: npyBytes(header)).shape == shape)
        }
    }

    @Test func theNormsTakeEveryZeroSizeInput() throws {
        let layer = try LayerNorm(dim: 8), rms = try RMSNorm(dim: 8)
        for leading in Self.zeroShapes {
            let x = try Tensor(shape: leading + [8], scalars: [])
            #expect(try layer(x).shape == x.shape)
            #expect(try rms(x).shape == x.shape)
        }
    }

    // MARK: writers write only what readers read

    @Test func writersRefuseARankTheirReadersRefuse() throws {
        let limit = NPYHeader.maxRank
        let atLimit = try Tensor(shape: [Int](repeating: 1, count: limit - 1) + [3], scalars: [1, 2, 3])
        #expect(try Tensor(npyData: atLimit.npyData()) == atLimit)
        #expect(try SafeTensors(data: SafeTensors.encode(["a": atLimit])).tensor(named: "a") == atLimit)

        for rank in [limit + 1, 1000, 30000] {
            let t = try Tensor(shape: [Int](repeating: 1, count: rank), scalars: [2.5])
            #expect {
                try t.npyData()
            } throws: { error in
                guard case let .unsupported(format, reason)? = error as? NormKitError else { return false }
                return format == "npy" && reason.contains("rank \(rank)") && reason.contains("at most \(limit)")
            }
            #expect {
                try SafeTensors.encode(["deep": t])
            } throws: { error in
                guard case let .invalidArgument(name, _, actual)? = error as? NormKitError else { return false }
                return name == "tensor 'deep'" && actual == "rank \(rank)"
            }
        }
    }

    /// Random shapes (ranks 1...64, zeros anywhere, up to 64 elements): what the writers
    /// write, the readers read back, bit for bit.
    @Test func writerOutputAlwaysReadsBack() throws {
        var rng = TestRNG(seed: 19)
        for _ in 0..<200 {
            let rank = rng.int(1...NPYHeader.maxRank)
            var shape = [Int](repeating: 1, count: rank)
            for _ in 0..<3 { shape[rng.int(0...(rank - 1))] = rng.int(1...4) }
            if rng.bool() { shape[rng.int(0...(rank - 1))] = 0 }
            let count = shape.reduce(1, *)
            let t = try Tensor(shape: shape, scalars: (0..<count).map { _ in Float(rng.uniform(-1e30, 1e30)) })
            #expect(try Tensor(npyData: t.npyData()) == t, "\(shape)")
            #expect(try SafeTensors(data: SafeTensors.encode(["x": t])).tensor(named: "x") == t, "\(shape)")
        }
    }

    // MARK: metadata keys

    @Test func metadataKeysInTwoNormalFormsAreRefusedNotMerged() throws {
        // "é" as one scalar (NFC) and as e + U+0301 (NFD); "Å" as U+00C5 and as U+212B (ANGSTROM SIGN).
        for (a, b) in [("caf\u{E9}", "cafe\u{301}"), ("\u{C5}", "\u{212B}")] {
            let header = #"{"__metadata__":{""# + a + #"":"1",""# + b + #"":"2"},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
            #expect {
                try SafeTensors(data: safetensorsBytes(header, [0, 0, 0x80, 0x3F]))
            } throws: { error in
                guard case let .invalidFile(format, offset, reason)? = error as? NormKitError else { return false }
                return format == "safetensors" && offset == headerOffset(of: "\"" + b + "\"", in: header)
                    && reason.contains("two normal forms")
            }
        }
        // Keys that differ as text are kept, both of them.
        let header = #"{"__metadata__":{"cafe":"1","caf\u00e9":"2"}}"#
        let file = try SafeTensors(data: safetensorsBytes(header))
        #expect(file.metadata == ["cafe": "1", "caf\u{E9}": "2"])
    }

    // MARK: a layer is listed as loadable only when it loads

    @Test func aNormLayerOfAnUnreadableDtypeIsNotLoadable() throws {
        // weight/bias dtype, weight shape, bias shape -> whether LayerNorm(loading:) loads it.
        let cases: [(String, String, String, String)] = [
            ("F8_E4M3", "F32", "[4]", "[4]"), ("F32", "I32", "[4]", "[4]"), ("U8", "U8", "[4]", "[4]"),
            ("F32", "F32", "[4]", "[3]"), ("F32", "F32", "[0]", "[0]"), ("F16", "BF16", "[4]", "[4]"),
            ("F64", "F32", "[4]", "[4]"),
        ]
        for (wType, bType, wShape, bShape) in cases {
            let wBytes = Self.byteCount(wType, wShape), bBytes = Self.byteCount(bType, bShape)
            let header = #"{"ln_f.weight":{"dtype":""# + wType + #"","shape":"# + wShape + #","data_offsets":[0,"# + "\(wBytes)"
                + #"]},"ln_f.bias":{"dtype":""# + bType + #"","shape":"# + bShape + #","data_offsets":["# + "\(wBytes),\(wBytes + bBytes)]}}"
            let file = try SafeTensors(data: safetensorsBytes(header, [UInt8](repeating: 0, count: wBytes + bBytes)))
            #expect(file.normLayerNames == ["ln_f"])
            let listed = Result { () throws(NormKitError) in try file.normLayerParameters(for: "ln_f") }
            let loaded = Result { () throws(NormKitError) in try LayerNorm(loading: "ln_f", from: file) }
            switch (listed, loaded) {
            case let (.failure(a), .failure(b)): #expect(a == b, "\(wType) \(bType) \(wShape) \(bShape)")
            case (.success, .success): break
            default: Issue.record("\(wType) \(bType) \(wShape) \(bShape): listed \(listed), loaded \(loaded)")
            }
        }
    }

    private static func byteCount(_ dtype: String, _ shape: String) -> Int {
        let count = shape == "[0]" ? 0 : Int(shape.dropFirst().dropLast())!
        let width = ["F8_E4M3": 1, "U8": 1, "F16": 2, "BF16": 2, "F32": 4, "I32": 4, "F64": 8][dtype]!
        return count * width
    }

    // MARK: float64 beyond Float's range

    /// Float64 values around Float's overflow threshold 2^128 - 2^103 (from there on a
    /// float64 rounds to infinity).
    static let threshold = 0x1p128 - 0x1p103

    @Test(arguments: [
        (1e300, true), (-1e300, true), (threshold, true), (-threshold, true), (Double.greatestFiniteMagnitude, true),
        (threshold.nextDown, false), (Double(Float.greatestFiniteMagnitude), false), (1e38, false),
        (Double.infinity, false), (-Double.infinity, false), (Double.nan, false), (0x1p-1074, false),
    ])
    func float64BeyondFloatIsAnErrorUnlessAllowed(value: Double, overflows: Bool) throws {
        for bigEndian in [false, true] {
            for fortran in [false, true] {
                let values: [Double] = [1, 2, 3, value, 5, 6]
                let bytes = values.flatMap { v -> [UInt8] in
                    let bits = bigEndian ? v.bitPattern.bigEndian : v.bitPattern.littleEndian
                    return withUnsafeBytes(of: bits) { Array($0) }
                }
                let header = "{'descr': '\(bigEndian ? ">" : "<")f8', 'fortran_order': \(fortran ? "True" : "False"), 'shape': (2, 3), }\n"
                let data = npyBytes(header, bytes)
                let allowed = try Tensor(npyData: data, allowingOverflow: true)
                // Element 3 in file order is (1, 0), C index 3, in C order, and (1, 1), C index 4,
                // in Fortran order.
                let got = allowed.scalars[fortran ? 4 : 3]
                #expect(got.isNaN == value.isNaN && (value.isNaN || got == Float(value)))
                if overflows {
                    #expect {
                        try Tensor(npyData: data)
                    } throws: { error in
                        guard case let .unsupported(format, reason)? = error as? NormKitError else { return false }
                        return format == "npy" && reason.contains("element 3 ") && reason.contains("allowingOverflow: true")
                    }
                } else {
                    #expect(try Tensor(npyData: data) == allowed || value.isNaN)
                }
            }
        }
        let f64 = withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
        let file = try SafeTensors(data: safetensorsBytes(#"{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#,
                                                          withUnsafeBytes(of: (1.0).bitPattern.littleEndian) { Array($0) } + f64))
        #expect(try file.tensor(named: "w", allowingOverflow: true).scalars[1].isInfinite == (overflows || value.isInfinite))
        if overflows {
            #expect(throws: NormKitError.self) { try file.tensor(named: "w") }
        } else {
            _ = try file.tensor(named: "w")
        }
    }
}

/// Every ordering of `values`.
private func permutations(_ values: [Int]) -> [[Int]] {
    guard values.count > 1 else { return [values] }
    var out: [[Int]] = []
    for i in values.indices {
        var rest = values
        let first = rest.remove(at: i)
        out += permutations(rest).map { [first] + $0 }
    }
    return out
}
