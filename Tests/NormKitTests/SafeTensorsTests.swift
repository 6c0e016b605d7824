import Foundation
import NormKit
import NormKitIO
import Testing

/// The committed fixtures (written by scripts/make-fixtures.py with numpy and safetensors).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func data(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }

    /// The fixture script's values: (i - 2.5) * 0.75 at flat C index i (exact in every format).
    static func ramp(_ shape: [Int]) throws -> Tensor {
        let n = shape.reduce(1, *)
        return try Tensor(shape: shape, scalars: (0..<n).map { (Float($0) - 2.5) * 0.75 })
    }

    /// A fresh empty directory for files a test writes.
    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("normkit-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// Builds safetensors bytes by hand: the 8-byte length (the header's, or `length`), the
/// header, then `data`.
func safetensorsBytes(_ header: [UInt8], _ data: [UInt8] = [], length: UInt64? = nil) -> Data {
    var out = Data()
    withUnsafeBytes(of: (length ?? UInt64(header.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: header)
    out.append(contentsOf: data)
    return out
}

func safetensorsBytes(_ header: String, _ data: [UInt8] = [], length: UInt64? = nil) -> Data {
    safetensorsBytes(Array(header.utf8), data, length: length)
}

/// The file offset of the `occurrence`-th `needle` in a safetensors header (which starts at byte 8).
func headerOffset(of needle: String, in header: String, occurrence: Int = 1) -> Int {
    let h = Array(header.utf8), n = Array(needle.utf8)
    var seen = 0
    for i in 0...(h.count - n.count) where Array(h[i..<(i + n.count)]) == n {
        seen += 1
        if seen == occurrence { return 8 + i }
    }
    fatalError("'\(needle)' not in header")
}

func bitsEqual(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern)
}

/// One malformed file and the error it must raise.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    var rule: String
    var bytes: Data
    /// The expected byte offset, or nil when the error carries none.
    var offset: Int?
    /// A phrase the error's reason must contain.
    var reason: String
    var testDescription: String { rule }
}

@Suite("SafeTensors")
struct SafeTensorsTests {
    // MARK: round trips

    @Test func roundTripInMemory() throws {
        let tensors: [String: Tensor] = [
            "b.weight": Tensor.randomNormal([7], seed: 1),
            "a": Tensor.randomNormal([3, 5], seed: 2),
            "c.empty": Tensor.zeros([0, 4]),
            "d": try Tensor(shape: [4], scalars: [.nan, .infinity, -0.0, .leastNonzeroMagnitude]),
            "é \"quoted\"\n": Tensor.randomNormal([1, 2, 3], seed: 3),
        ]
        let data = try SafeTensors.encode(tensors, metadata: ["format": "pt", "note": "tab\there"])
        let file = try SafeTensors(data: data)
        #expect(file.names == tensors.keys.sorted())
        #expect(file.metadata == ["format": "pt", "note": "tab\there"])
        for (name, t) in tensors {
            #expect(bitsEqual(try file.tensor(named: name), t), "\(name)")
            #expect(file.info(named: name)?.dtype == .f32)
        }
        // The header is padded so the data area starts 8-byte aligned.
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(headerLength % 8 == 0)
    }

    @Test func roundTripThroughAFile() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        let w = Tensor.randomNormal([768], seed: 9)
        try SafeTensors.write(["ln.weight": w], to: url)
        let file = try SafeTensors(contentsOf: url)
        #expect(file.names == ["ln.weight"])
        #expect(file.metadata.isEmpty)
        #expect(bitsEqual(try file.tensor(named: "ln.weight"), w))
        #expect(file.byteCount == (try Data(contentsOf: url)).count)
    }

    @Test func emptyFileHasNoTensors() throws {
        let file = try SafeTensors(data: try SafeTensors.encode([:]))
        #expect(file.names.isEmpty)
        #expect(file.normLayerNames.isEmpty)
    }

    @Test func writerRejectsTheReservedName() {
        #expect(throws: NormKitError.self) {
            try SafeTensors.encode(["__metadata__": Tensor.zeros([1])])
        }
    }

    @Test func missingFileIsAnIOError() {
        let error = #expect(throws: NormKitError.self) {
            try SafeTensors(contentsOf: URL(fileURLWithPath: "/nonexistent/model.safetensors"))
        }
        #expect(error == .io(path: "/nonexistent/model.safetensors", reason: "No such file or directory"))
    }

    // MARK: files from the reference implementation

    @Test func writerIsByteIdenticalToTheReference() throws {
        let reference = try Fixtures.data("writer_reference.safetensors")
        let ours = try SafeTensors.encode(
            ["x": try Fixtures.ramp([2, 3]), "y.bias": try Fixtures.ramp([4]), "z": try Fixtures.ramp([1, 1, 2])],
            metadata: ["format": "pt"])
        #expect(ours == reference)
    }

    @Test func readsEveryFloatDTypeFromTheReference() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("dtypes.safetensors"))
        #expect(file.names == ["a_f32", "b_f16", "c_f64", "d_i64", "e_scalar", "f_empty"])
        #expect(file.metadata == ["format": "np"])
        let ramp = try Fixtures.ramp([2, 3])
        for name in ["a_f32", "b_f16", "c_f64"] {
            #expect(try file.tensor(named: name) == ramp, "\(name)")
        }
        #expect(file.info(named: "b_f16")?.dtype == .f16)
        #expect(file.info(named: "c_f64")?.dtype == .f64)
        #expect(file.info(named: "d_i64")?.dtype == .i64)
        #expect(file.info(named: "d_i64")?.shape == [3])
        #expect(file.info(named: "d_i64")?.dataOffsets.count == 24)
        #expect(try file.tensor(named: "f_empty").shape == [0, 3])
        #expect(file.info(named: "e_scalar")?.shape == [])
    }

    @Test func readsBFloat16FromTheReference() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("bf16.safetensors"))
        #expect(file.info(named: "w")?.dtype == .bf16)
        #expect(try file.tensor(named: "w") == (try Fixtures.ramp([2, 3])))
    }

    @Test func unsupportedDTypeAndScalarAreRefusedClearly() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("dtypes.safetensors"))
        let dtype = #expect(throws: NormKitError.self) { try file.tensor(named: "d_i64") }
        guard case let .unsupported(format, reason)? = dtype else { Issue.record("\(String(describing: dtype))"); return }
        #expect(format == "safetensors")
        #expect(reason.contains("'d_i64'") && reason.contains("I64"))
        let scalar = #expect(throws: NormKitError.self) { try file.tensor(named: "e_scalar") }
        guard case let .unsupported(_, reason2)? = scalar else { Issue.record("\(String(describing: scalar))"); return }
        #expect(reason2.contains("'e_scalar'") && reason2.contains("shape []"))
    }

    @Test func missingTensorListsTheNames() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("dtypes.safetensors"))
        #expect(throws: NormKitError.missingTensor(name: "nope", available: file.names)) {
            try file.tensor(named: "nope")
        }
    }

    // MARK: layout details

    @Test func unalignedDataIsRead() throws {
        // An odd header length puts the data area at an odd offset; an F32, a BF16 and
        // an F64 tensor follow each other at unaligned positions.
        let ramp = try Fixtures.ramp([2])
        var data: [UInt8] = []
        for v in ramp.scalars { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }          // 0..<8
        data += [0xF0, 0xBF, 0x90, 0xBF]                                                                   // BF16 -1.875, -1.125: 8..<12
        for v in ramp.scalars { withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { data += $0 } }  // 12..<28
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"c":{"dtype":"F64","shape":[2],"data_offsets":[12,28]}} "#
        let bytes = safetensorsBytes(header, data)
        #expect((8 + header.utf8.count) % 2 == 1)
        let file = try SafeTensors(data: bytes)
        #expect(try file.tensor(named: "a") == ramp)
        #expect(try file.tensor(named: "b") == ramp)
        #expect(try file.tensor(named: "c") == ramp)
        // The same file inside a Data slice that does not start at index 0.
        let sliced = (Data([0xAA, 0xBB, 0xCC]) + bytes).dropFirst(3)
        #expect(try SafeTensors(data: sliced).tensor(named: "c") == ramp)
    }

    @Test func halfPrecisionSpecialValues() throws {
        // subnormal 2^-24, largest half 65504, -inf, NaN, -0.
        let halves: [UInt16] = [0x0001, 0x7BFF, 0xFC00, 0x7E00, 0x8000]
        var data: [UInt8] = []
        for h in halves { withUnsafeBytes(of: h.littleEndian) { data += $0 } }
        let file = try SafeTensors(data: safetensorsBytes(#"{"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]}}"#, data))
        let v = try file.tensor(named: "h").scalars
        #expect(v[0] == 0x1p-24 && v[1] == 65504 && v[2] == -.infinity && v[3].isNaN)
        #expect(v[4] == 0 && v[4].sign == .minus)
    }

    @Test func headerDetailsTheReferenceAccepts() throws {
        // Unknown fields are ignored, zero-size tensors may share an offset, whitespace
        // pads the header, and __metadata__ may come anywhere.
        let header = #" { "z" : { "dtype" : "F32" , "shape" : [0] , "data_offsets" : [4, 4], "extra": [1, {"x": null}] }, "y":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}, "x":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}, "__metadata__":{"k":"v \u00e9 \ud83d\ude00"} }   "#
        let file = try SafeTensors(data: safetensorsBytes(header, [1, 2, 3, 4]))
        #expect(file.names == ["x", "y", "z"])
        #expect(file.metadata == ["k": "v é 😀"])
        #expect(try file.tensor(named: "y").shape == [0, 5])
    }

    // MARK: one malformed file per validation rule

    static let f32x2 = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    static let eight = [UInt8](repeating: 0, count: 8)

    static func malformed() -> [MalformedCase] {
        var cases: [MalformedCase] = []
        func add(_ rule: String, _ bytes: Data, _ offset: Int?, _ reason: String) {
            cases.append(MalformedCase(rule: rule, bytes: bytes, offset: offset, reason: reason))
        }
        func header(_ rule: String, _ h: String, data: [UInt8] = [], at needle: String?, occurrence: Int = 1, _ reason: String) {
            add(rule, safetensorsBytes(h, data), needle.map { headerOffset(of: $0, in: h, occurrence: occurrence) }, reason)
        }
        // Length field and header bounds.
        add("file shorter than the length field", Data([1, 2, 3]), 0, "too short")
        add("header length over the 100 MB limit", safetensorsBytes("{}", length: 100_000_001), 0, "exceeds the 100000000-byte limit")
        add("header length past the end of the file", safetensorsBytes("{}", length: 3), 0, "runs past the end")
        add("header length 2^64-1", safetensorsBytes("{}", length: .max), 0, "exceeds")
        // UTF-8 JSON object.
        add("header not UTF-8", safetensorsBytes([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]), 10, "not valid UTF-8")
        // Ill-formed UTF-8 after a valid two-byte character: the offset is that of the
        // bad sequence's first byte (overlong, surrogate, above U+10FFFF, truncated).
        for (name, bad) in [("overlong '/'", [0xC0, 0xAF]), ("surrogate U+D800", [0xED, 0xA0, 0x80]),
                            ("above U+10FFFF", [0xF4, 0x90, 0x80, 0x80]), ("truncated euro sign", [0xE2, 0x82])] as [(String, [UInt8])] {
            add("header not UTF-8: \(name)", safetensorsBytes([0x7B, 0x22, 0xC3, 0xA9] + bad + [0x22, 0x3A, 0x31, 0x7D]), 12, "not valid UTF-8")
        }
        header("header not JSON", #"{"a":"#, at: nil, "expected a JSON value")
        header("header a JSON array", "[]", at: "[", "must be a JSON object, got an array")
        header("header empty", "", at: nil, "expected a JSON value")
        header("bytes after the JSON object", "{} x", at: "x", "after the end of the JSON value")
        header("duplicate tensor name", #"{"a":\#(f32x2),"a":\#(f32x2)}"#, data: eight, at: #""a""#, occurrence: 2, "duplicate key 'a'")
        header("nesting too deep", #"{"a":{"extra":"# + String(repeating: "[", count: 100), at: nil, "nested deeper than 64")
        header("too many JSON values", #"{"a":{"extra":["# + String(repeating: "0,", count: 1 << 22) + "0]}}", at: nil, "more than 4194304 JSON values")
        header("bad escape", #"{"\q":1}"#, at: #"\q"#, "invalid escape")
        header("lone surrogate", #"{"\udc00":1}"#, at: #"\udc00"#, "unpaired surrogate")
        header("control character in a string", "{\"a\u{1}\":1}", at: nil, "control character")
        header("number with a leading zero", #"{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}"#, at: "02", "leading zero")
        // __metadata__.
        header("__metadata__ not an object", #"{"__metadata__":5}"#, at: "5", "__metadata__ must be an object")
        header("__metadata__ value not a string", #"{"__metadata__":{"k":1}}"#, at: "1", "value 'k' must be a string")
        // Tensor entries.
        header("tensor entry not an object", #"{"a":[1]}"#, at: "[1]", "tensor 'a' must be an object")
        header("no dtype", #"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, data: eight, at: #"{"shape""#, "tensor 'a' has no \"dtype\"")
        header("no shape", #"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, data: eight, at: #"{"dtype""#, "tensor 'a' has no \"shape\"")
        header("no data_offsets", #"{"a":{"dtype":"F32","shape":[2]}}"#, data: eight, at: #"{"dtype""#, "tensor 'a' has no \"data_offsets\"")
        header("dtype not a string", #"{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}"#, data: eight, at: "4,", "dtype must be a string")
        header("unknown dtype", #"{"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}"#, data: eight, at: #""F17""#, "unknown dtype 'F17'")
        // Shapes.
        header("shape not an array", #"{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}"#, data: eight, at: "2,", "shape must be an array")
        header("negative dimension", #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight, at: "-2", "shape[0] must be a non-negative integer, got -2")
        header("fractional dimension", #"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: eight, at: "2.0", "got 2.0")
        header("dimension not a number", #"{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}"#, data: eight, at: #""2""#, "got a string")
        header("dimension beyond Int", #"{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#, data: eight, at: "999", "too large")
        header("element count overflows", #"{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: eight, at: "[4294967296", "element count of shape [4294967296, 4294967296] overflows")
        header("byte size overflows", #"{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}"#, data: eight, at: "[2305843009213693952", "byte size")
        header("sub-byte size not whole bytes", #"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, data: [0, 0], at: "[3]", "12 bits, not a whole number of bytes")
        // Offsets.
        header("data_offsets not a pair", #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, data: eight, at: "[0]", "must be an array [begin, end]")
        header("negative offset", #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, data: eight, at: "-8", "data_offsets begin must be a non-negative integer")
        header("offsets reversed", #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: eight, at: "[8,0]", "end before they begin")
        header("offsets past the data area", #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: eight, at: "[0,16]", "end past the data area (8 bytes)")
        header("offsets disagree with shape x dtype", #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], at: "[0,4]", "hold 4 bytes, but shape [2] of F32 needs 8")
        // Coverage of the data area.
        let overlap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        add("tensors overlap", safetensorsBytes(overlap, [UInt8](repeating: 0, count: 12)), 8 + overlap.utf8.count + 4, "tensor 'b' (data bytes 4..<12) overlaps tensor 'a'")
        let same = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        add("two tensors on the same bytes", safetensorsBytes(same, eight), 8 + same.utf8.count, "overlaps")
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        add("gap between tensors", safetensorsBytes(gap, [UInt8](repeating: 0, count: 12)), 8 + gap.utf8.count + 4, "data bytes 4..<8 belong to no tensor")
        let late = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        add("gap before the first tensor", safetensorsBytes(late, eight), 8 + late.utf8.count, "data bytes 0..<4 belong to no tensor")
        let short = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        add("bytes after the last tensor", safetensorsBytes(short, eight), 8 + short.utf8.count + 4, "the last 4 bytes of the data area")
        add("data but no tensors", safetensorsBytes("{}", [1]), 10, "the last 1 bytes")
        return cases
    }

    @Test(arguments: malformed())
    func malformedFileThrows(_ c: MalformedCase) {
        let error = #expect(throws: NormKitError.self) { try SafeTensors(data: c.bytes) }
        guard case let .invalidFile(format, offset, reason)? = error else {
            Issue.record("expected invalidFile, got \(String(describing: error))")
            return
        }
        #expect(format == "safetensors")
        #expect(reason.contains(c.reason), "reason: \(reason)")
        if let expected = c.offset { #expect(offset == expected, "reason: \(reason)") }
    }

    @Test func errorMessagesNameTheOffsetAndTensor() {
        let h = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#
        let error = #expect(throws: NormKitError.self) { try SafeTensors(data: safetensorsBytes(h, [0, 0, 0, 0])) }
        #expect(error?.description
            == "invalid safetensors file at byte \(headerOffset(of: "[0,4]", in: h)): tensor 'w': data_offsets [0, 4] hold 4 bytes, but shape [2] of F32 needs 8")
    }

    /// Every truncation of a valid file is refused with an error, never a trap.
    @Test func everyTruncationThrows() throws {
        let bytes = try Fixtures.data("dtypes.safetensors")
        for n in 0..<bytes.count {
            #expect(throws: NormKitError.self) { try SafeTensors(data: bytes.prefix(n)) }
        }
    }
}
