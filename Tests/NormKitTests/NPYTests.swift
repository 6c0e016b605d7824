import Foundation
import NormKit
import NormKitIO
import Testing

/// Builds .npy bytes by hand: magic, version, the header length (the header's, or
/// `length`), the header, then `data`.
func npyBytes(major: UInt8 = 1, minor: UInt8 = 0, _ header: [UInt8], _ data: [UInt8] = [], length: Int? = nil) -> Data {
    var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, minor])
    let n = length ?? header.count
    if major == 1 {
        out.append(contentsOf: [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF)])
    } else {
        out.append(contentsOf: (0..<4).map { UInt8((n >> (8 * $0)) & 0xFF) })
    }
    out.append(contentsOf: header)
    out.append(contentsOf: data)
    return out
}

func npyBytes(major: UInt8 = 1, _ header: String, _ data: [UInt8] = [], length: Int? = nil) -> Data {
    npyBytes(major: major, Array(header.utf8), data, length: length)
}

/// The file offset of `needle` in a version-1 header (which starts at byte 10).
func npyHeaderOffset(of needle: String, in header: String, occurrence: Int = 1) -> Int {
    headerOffset(of: needle, in: header, occurrence: occurrence) - 8 + 10
}

@Suite("NPY")
struct NPYTests {
    static let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n"
    static let data24 = [UInt8](repeating: 0, count: 24)

    // MARK: round trips

    @Test(arguments: [[5], [2, 3], [2, 3, 4], [0, 4], [3, 0], [1, 1, 1, 1, 7], [1]])
    func roundTrip(_ shape: [Int]) throws {
        let t = Tensor.randomNormal(shape, seed: UInt64(shape.count))
        let data = try t.npyData()
        let back = try Tensor(npyData: data)
        #expect(bitsEqual(back, t))
        let header = try NPYHeader(npyData: data)
        #expect(header.version == (1, 0) as (Int, Int))
        #expect(header.dtype == "<f4" && !header.fortranOrder && header.shape == shape)
        #expect(header.dataOffset % 64 == 0)
    }

    @Test func specialValuesSurvive() throws {
        let t = try Tensor(shape: [5], scalars: [.nan, -.infinity, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude])
        #expect(bitsEqual(try Tensor(npyData: t.npyData()), t))
    }

    @Test func roundTripThroughAFile() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.npy")
        let t = Tensor.randomNormal([2, 64, 768], seed: 4)
        try t.writeNPY(to: url)
        #expect(bitsEqual(try Tensor(npyContentsOf: url), t))
    }

    @Test func writerIsByteIdenticalToNumPy() throws {
        #expect(try Fixtures.ramp([2, 3]).npyData() == (try Fixtures.data("f4_2x3.npy")))
        #expect(try Tensor.zeros([0, 4]).npyData() == (try Fixtures.data("f4_empty_0x4.npy")))
    }

    @Test func missingFileIsAnIOError() {
        #expect(throws: NormKitError.io(path: "/nonexistent/x.npy", reason: "No such file or directory")) {
            try Tensor(npyContentsOf: URL(fileURLWithPath: "/nonexistent/x.npy"))
        }
    }

    // MARK: files written by NumPy

    @Test(arguments: ["f4_2x3.npy", "f8_2x3.npy", "f2_2x3.npy", "f4_be_2x3.npy", "f8_be_2x3.npy",
                      "f2_be_2x3.npy", "f4_v2_2x3.npy", "f4_v3_2x3.npy"])
    func readsNumPyFixture(_ name: String) throws {
        #expect(try Tensor(npyContentsOf: Fixtures.url(name)) == (try Fixtures.ramp([2, 3])))
    }

    @Test func fixtureHeaders() throws {
        let v3 = try NPYHeader(npyData: Fixtures.data("f4_v3_2x3.npy"))
        #expect(v3.version == (3, 0) as (Int, Int) && v3.dtype == "<f4" && v3.shape == [2, 3])
        #expect(try NPYHeader(npyData: Fixtures.data("f4_v2_2x3.npy")).version == (2, 0) as (Int, Int))
        #expect(try NPYHeader(npyData: Fixtures.data("f2_be_2x3.npy")).dtype == ">f2")
        #expect(try NPYHeader(npyData: Fixtures.data("f4_fortran_2x3x4.npy")).fortranOrder)
        #expect(try NPYHeader(npyData: Fixtures.data("f4_scalar.npy")).shape == [])
    }

    @Test func fortranOrderIsTransposedIntoCOrder() throws {
        let t = try Tensor(npyContentsOf: Fixtures.url("f4_fortran_2x3x4.npy"))
        #expect(t == (try Fixtures.ramp([2, 3, 4])))
        #expect(t.scalar(at: [1, 2, 3]) == Float(23 - 2.5) * 0.75)
    }

    @Test func fortranOrderHandBuilt() throws {
        // shape (2, 3) in Fortran order stores a00 a10 a01 a11 a02 a12.
        var data: [UInt8] = []
        for v: Float in [0, 3, 1, 4, 2, 5] { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
        let t = try Tensor(npyData: npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data))
        #expect(t.scalars == [0, 1, 2, 3, 4, 5])
        let empty = try Tensor(npyData: npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 0, 2), }"))
        #expect(empty.shape == [3, 0, 2])
    }

    @Test func emptyArray() throws {
        #expect(try Tensor(npyContentsOf: Fixtures.url("f4_empty_0x4.npy")).shape == [0, 4])
    }

    @Test func halfPrecisionSpecialValues() throws {
        let v = try Tensor(npyContentsOf: Fixtures.url("f2_special.npy")).scalars
        #expect(v[0] == 0x1p-24 && v[1] == 65504 && v[2] == .infinity)
        #expect(v[3] == 0 && v[3].sign == .minus)
    }

    @Test func headerSpellingsNumPyAccepts() throws {
        let data = [UInt8](repeating: 0, count: 24)
        for header in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",   // Python 2 longs
            #"{"descr": "<f4", "fortran_order": False, "shape": (2, 3)}"#,      // double quotes, no trailing comma
            "{ 'shape' : ( 2 , 3 ) , 'fortran_order' : False , 'descr' : '<f4' }",  // any order, spaces
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",         // no newline at the end
        ] {
            #expect(try Tensor(npyData: npyBytes(header, data)).shape == [2, 3], "\(header)")
        }
    }

    // MARK: refused clearly

    @Test func zeroDimensionalArrayIsRefused() throws {
        let error = #expect(throws: NormKitError.self) { try Tensor(npyContentsOf: Fixtures.url("f4_scalar.npy")) }
        guard case let .unsupported(format, reason)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(format == "npy" && reason.contains("0-d array") && reason.contains("np.atleast_1d"))
    }

    @Test func otherDTypesAreRefused() throws {
        let error = #expect(throws: NormKitError.self) { try Tensor(npyContentsOf: Fixtures.url("i8_3.npy")) }
        guard case let .unsupported(_, reason)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(reason.contains("'<i8'") && reason.contains("<f4"))
        let structured = npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", [0, 0, 0, 0])
        #expect(throws: NormKitError.self) { try Tensor(npyData: structured) }
        let native = npyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", [0, 0])
        #expect(throws: NormKitError.self) { try Tensor(npyData: native) }
    }

    // MARK: one malformed file per validation rule

    static func malformed() -> [MalformedCase] {
        var cases: [MalformedCase] = []
        func add(_ rule: String, _ bytes: Data, _ offset: Int?, _ reason: String) {
            cases.append(MalformedCase(rule: rule, bytes: bytes, offset: offset, reason: reason))
        }
        func header(_ rule: String, _ h: String, data: [UInt8] = data24, at needle: String?, occurrence: Int = 1, _ reason: String) {
            add(rule, npyBytes(h, data), needle.map { npyHeaderOffset(of: $0, in: h, occurrence: occurrence) }, reason)
        }
        let good = Array(ok.utf8)
        // Magic, version, header length.
        add("file shorter than magic and version", Data([0x93, 0x4E, 0x55]), 0, "too short")
        var badMagic = npyBytes(ok, data24); badMagic[5] = 0x5A
        add("wrong magic", badMagic, 5, "must start with \\x93NUMPY")
        add("version 4.0", npyBytes(major: 4, good, data24), 6, "unsupported .npy version 4.0")
        add("version 1.1", npyBytes(major: 1, minor: 1, good, data24), 6, "unsupported .npy version 1.1")
        add("file ends inside the length field", Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 2, 0, 9]), 8, "ends inside the header length")
        add("header length past the end", npyBytes(ok, [], length: 500), 8, "header length 500 runs past the end")
        add("version 2 length past the end", npyBytes(major: 2, ok, [], length: 100_000), 8, "runs past the end")
        add("header over the 1 MiB limit", npyBytes(major: 2, ok, [], length: 0x7FFF_FFFF), 8, "exceeds the 1048576-byte limit")
        var v3 = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x\u{FF}': 1}".utf8)
        v3[v3.firstIndex(of: 0xC3)!] = 0xFF  // a lone continuation-less byte: not UTF-8
        add("version 3 header not UTF-8", npyBytes(major: 3, v3, data24), 12 + v3.firstIndex(of: 0xFF)!, "must be UTF-8")
        // The dict literal.
        header("header not a dict", "[1]", at: "[", "must be a Python dict, got a list")
        header("header empty", "", at: nil, "expected a value, got end of header")
        header("dict not closed", "{'descr': '<f4'", at: nil, "expected ',' or '}' in dict")
        header("unterminated string", "{'descr: 1}", at: "'descr", "unterminated string")
        header("unknown escape", "{'descr': '<f\\4'}", at: "\\4", "unsupported escape")
        header("bytes after the dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", at: "x", "after the header dict")
        header("not a literal", "{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3), }", at: "false", "expected a Python literal, got 'false'")
        header("malformed number", "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5, 3), }", at: "2.5", "malformed number")
        header("nesting too deep", "{'descr': " + String(repeating: "(", count: 100), at: nil, "nested deeper than 32")
        header("key not a string", "{1: 2}", at: "1", "expected a string key")
        // Keys.
        header("missing shape", "{'descr': '<f4', 'fortran_order': False, }", at: nil, "has no 'shape'")
        header("missing descr", "{'fortran_order': False, 'shape': (2, 3), }", at: nil, "has no 'descr'")
        header("missing fortran_order", "{'descr': '<f4', 'shape': (2, 3), }", at: nil, "has no 'fortran_order'")
        header("extra key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", at: "'extra'", "unexpected header key 'extra'")
        header("duplicate key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", at: "'descr'", occurrence: 2, "duplicate key 'descr'")
        // Values.
        header("descr not a string", "{'descr': 4, 'fortran_order': False, 'shape': (2, 3), }", at: "4", "'descr' must be a dtype string")
        header("fortran_order not a bool", "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", at: "0", "'fortran_order' must be True or False, got an int")
        header("shape an int in parentheses", "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", at: "6", "'shape' must be a tuple of ints, got an int")
        header("shape a list", "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", at: "[2", "got a list")
        header("shape holds a string", "{'descr': '<f4', 'fortran_order': False, 'shape': ('2', 3), }", at: "'2'", "'shape'[0] must be an int, got a string")
        header("negative dimension", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", at: "-3", "'shape'[1] must be a non-negative int")
        header("dimension beyond 64 bits", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", at: "999", "fits in 64 bits")
        header("element count overflows", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", at: "(4294967296", "element count of shape [4294967296, 4294967296] overflows")
        header("byte size overflows", "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }", at: "(2305843009213693952", "byte size")
        // Data length.
        add("data too short", npyBytes(ok, [UInt8](repeating: 0, count: 20)), 10 + ok.utf8.count, "shape [2, 3] of <f4 needs 24 bytes of data, the file has 20")
        add("data too long", npyBytes(ok, [UInt8](repeating: 0, count: 28)), 10 + ok.utf8.count + 24, "4 bytes follow the 24 bytes of array data")
        return cases
    }

    @Test(arguments: malformed())
    func malformedFileThrows(_ c: MalformedCase) {
        let error = #expect(throws: NormKitError.self) { try Tensor(npyData: c.bytes) }
        guard case let .invalidFile(format, offset, reason)? = error else {
            Issue.record("expected invalidFile, got \(String(describing: error))")
            return
        }
        #expect(format == "npy")
        #expect(reason.contains(c.reason), "reason: \(reason)")
        if let expected = c.offset { #expect(offset == expected, "reason: \(reason)") }
    }

    /// Every truncation of a valid file is refused with an error, never a trap.
    @Test func everyTruncationThrows() throws {
        let bytes = try Fixtures.data("f4_fortran_2x3x4.npy")
        for n in 0..<bytes.count {
            #expect(throws: NormKitError.self) { try Tensor(npyData: bytes.prefix(n)) }
        }
    }
}

/// `<f2` and `>f2` files into `HalfTensor<Float16>` and back, bit for bit (Sources/NormKitIO/NPY/NPY+Half.swift).
@Suite("NPY float16 as HalfTensor")
struct HalfNPYTests {
    @Test("<f2 and >f2 read as their 16-bit patterns, equal to the Float reader's values")
    func readsBothByteOrders() throws {
        let ramp = try Fixtures.ramp([2, 3])
        for name in ["f2_2x3.npy", "f2_be_2x3.npy"] {
            let h = try HalfTensor<Float16>(npyContentsOf: Fixtures.url(name))
            #expect(h.shape == [2, 3], "\(name)")
            #expect(h.elements.map(Float.init) == ramp.scalars, "\(name)")
        }
        // Known patterns: the smallest subnormal, the largest finite, +inf, -0.
        let special = try HalfTensor<Float16>(npyContentsOf: Fixtures.url("f2_special.npy"))
        #expect(special.elements.map(\.bitPattern) == [0x0001, 0x7BFF, 0x7C00, 0x8000])
    }

    @Test("The writer gives np.save's bytes, and a NaN payload survives the round trip")
    func writesWhatNumPyWrites() throws {
        let h = try HalfTensor<Float16>(npyContentsOf: Fixtures.url("f2_2x3.npy"))
        #expect(try h.npyData() == (try Fixtures.data("f2_2x3.npy")))
        let patterns: [UInt16] = [0x7E01, 0xFC00, 0x3C00, 0xC000, 0x0001, 0x8000]
        let t = try HalfTensor<Float16>(shape: [3, 2], bitPatterns: patterns)
        let back = try HalfTensor<Float16>(npyData: t.npyData())
        #expect(back.shape == [3, 2])
        #expect(back.elements.map(\.bitPattern) == patterns)
        let dir = try Fixtures.temporaryDirectory()
        let url = dir.appendingPathComponent("h.npy")
        try t.writeNPY(to: url)
        #expect(try HalfTensor<Float16>(npyContentsOf: url).elements.map(\.bitPattern) == patterns)
    }

    @Test("A Fortran-order file comes out in C order")
    func fortranOrder() throws {
        // The 2x3 array [[1, 2, 3], [4, 5, 6]] stored column by column: 1, 4, 2, 5, 3, 6.
        let header = "{'descr': '<f2', 'fortran_order': True, 'shape': (2, 3), }" + String(repeating: " ", count: 59) + "\n"
        let values: [Float16] = [1, 4, 2, 5, 3, 6]
        let data = values.flatMap { [UInt8(truncatingIfNeeded: $0.bitPattern), UInt8($0.bitPattern >> 8)] }
        let h = try HalfTensor<Float16>(npyData: npyBytes(header, data))
        #expect(h.shape == [2, 3])
        #expect(h.elements == [1, 2, 3, 4, 5, 6])
    }

    @Test("Other dtypes, 0-d arrays and truncated data are refused with a typed error")
    func refusals() throws {
        #expect {
            _ = try HalfTensor<Float16>(npyContentsOf: Fixtures.url("f4_2x3.npy"))
        } throws: { error in
            guard case let NormKitError.unsupported(format, reason) = error else { return false }
            return format == "npy" && reason.contains("dtype '<f4'") && reason.contains("a HalfTensor<Float16> reads <f2 or >f2")
        }
        let scalar = "{'descr': '<f2', 'fortran_order': False, 'shape': (), }" + String(repeating: " ", count: 62) + "\n"
        #expect {
            _ = try HalfTensor<Float16>(npyData: npyBytes(scalar, [0, 0x3C]))
        } throws: { error in
            guard case let NormKitError.unsupported(_, reason) = error else { return false }
            return reason.contains("0-d array")
        }
        let full = try Fixtures.data("f2_2x3.npy")
        #expect {
            _ = try HalfTensor<Float16>(npyData: full.dropLast(1))
        } throws: { error in
            if case NormKitError.invalidFile = error { return true }
            return false
        }
    }
}
