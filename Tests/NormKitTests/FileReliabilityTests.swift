// Files: paths that cannot be read or written, special files, huge headers, values
// out of Float's range, and seeded mutations of every fixture. One malformed file per
// validation rule is pinned in SafeTensorsTests.swift and NPYTests.swift
// (`malformedFileThrows`, `everyTruncationThrows`); docs/reliability.md, "Files",
// links each rule to its test.
//
// The mutation test is a small in-suite fuzzer: it runs in every `swift test` and, in
// CI, under AddressSanitizer and ThreadSanitizer, next to the libFuzzer targets of
// scripts/fuzz.sh (which run longer, but only in their own ASan build).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NormKit
import NormKitIO
import Testing

/// Reads `url` with both readers; returns their errors (nil where one succeeded).
private func readErrors(_ url: URL) -> (safetensors: NormKitError?, npy: NormKitError?) {
    var a: NormKitError?, b: NormKitError?
    do { _ = try SafeTensors(contentsOf: url) } catch { a = error }
    do { _ = try Tensor(npyContentsOf: url) } catch { b = error }
    return (a, b)
}

@Suite("Reliability: files", .tags(.reliability))
struct FileReliabilityTests {
    // MARK: paths

    /// A directory, a path through a regular file and the empty path (the current
    /// directory) are `io` errors naming the path and the system's reason; an empty
    /// regular file and /dev/null (an empty stream) are `invalidFile` ("too short"), as
    /// any stream is read as its bytes (issue 19). Nothing traps, and under
    /// `--sanitize=address` nothing leaks (Foundation's reader lost 4 KiB per empty
    /// file; FileAccess.read no longer calls it for one).
    @Test func unreadablePathsAreIOErrors() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("plain")
        try Data([1, 2, 3]).write(to: file)
        let cases: [(URL, String?)] = [
            (dir, "Is a directory"),
            (file.appendingPathComponent("child.npy"), "Not a directory"),
            (URL(fileURLWithPath: ""), "Is a directory"),
        ]
        for (url, reason) in cases {
            let (a, b) = readErrors(url)
            for error in [a, b] {
                guard case let .io(path, message)? = error else {
                    Issue.record("\(url.path): expected an io error, got \(String(describing: error))")
                    continue
                }
                #expect(path == url.path)
                if let reason { #expect(message == reason, "\(url.path)") }
            }
        }
        let empty = dir.appendingPathComponent("empty")
        try Data().write(to: empty)
        for url in [empty, URL(fileURLWithPath: "/dev/null")] {
            let (a, b) = readErrors(url)
            #expect(a == .invalidFile(format: "safetensors", offset: 0, reason: "the file is 0 bytes, too short for the 8-byte header length"))
            #expect(b == .invalidFile(format: "npy", offset: 0, reason: "the file is 0 bytes, too short for the 8-byte magic and version"))
        }
    }

    /// A FIFO (named pipe) with no writer: reading it is an error at once (an empty
    /// stream, "too short"), not a wait for a writer that never comes (a hang would be
    /// killed by the alarm and fail the exit test).
    @Test(.tags(.exitTest))
    func namedPipeIsRefusedWithoutBlocking() async throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe").path
        #expect(mkfifo(fifo, 0o600) == 0)
        await #expect(processExitsWith: .success) { [fifo = fifo as String] in
            alarm(10)
            let (a, b) = readErrors(URL(fileURLWithPath: fifo))
            guard case .invalidFile? = a, case .invalidFile? = b else { exit(1) }
        }
    }

    /// Writing where nothing can be written (a missing directory, an existing
    /// directory's path, a path through a regular file) is an `io` error, and leaves no
    /// file (not even the atomic write's temporary) behind.
    @Test func unwritablePathsAreIOErrorsAndLeaveNothing() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("plain")
        try Data([1]).write(to: file)
        let sub = dir.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: false)
        let t = Tensor.randomNormal([2, 3], seed: 1)
        for url in [dir.appendingPathComponent("missing/x.npy"), sub, file.appendingPathComponent("x.npy")] {
            for write in [{ try t.writeNPY(to: url) }, { try SafeTensors.write(["t": t], to: url) }] as [() throws -> Void] {
                #expect {
                    try write()
                } throws: { error in
                    guard case let .io(path, _) = error as? NormKitError else { return false }
                    return path == url.path
                }
            }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == ["plain", "sub"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: sub.path).isEmpty)
        #expect(try Data(contentsOf: file) == Data([1]))
    }

    // MARK: headers at their limits

    /// A .npy header of exactly 1 MiB (the dict padded with spaces) is read; one byte
    /// more is refused before it is parsed.
    @Test func npyHeaderAtTheOneMiBLimit() throws {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
        let limit = NPYHeader.maxHeaderLength
        var header = Array(dict.utf8) + [UInt8](repeating: 0x20, count: limit - dict.utf8.count - 1) + [0x0A]
        let data: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]  // 1.0, 2.0
        #expect(header.count == limit)
        #expect(try Tensor(npyData: npyBytes(major: 2, header, data)).scalars == [1, 2])
        header.insert(0x20, at: dict.utf8.count)
        #expect(throws: NormKitError.invalidFile(format: "npy", offset: 8,
                                                 reason: "header length \(limit + 1) exceeds the \(limit)-byte limit")) {
            try Tensor(npyData: npyBytes(major: 2, header, data))
        }
    }

    /// A safetensors header of several MB (4 MiB of whitespace around one tensor, and
    /// 100 000 metadata entries) parses; the 100 MB limit itself is pinned in
    /// `SafeTensorsTests.malformedFileThrows` ("header length over the 100 MB limit").
    @Test func largeSafetensorsHeadersParse() throws {
        let entry = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let spaced = String(repeating: " ", count: 4 << 20) + entry + String(repeating: "\n", count: 1000)
        let file = try SafeTensors(data: safetensorsBytes(spaced, [0, 0, 0x80, 0x3F]))
        #expect(try file.tensor(named: "w").scalars == [1])
        let metadata = (0..<100_000).map { #""k\#($0)":"v""# }.joined(separator: ",")
        let many = try SafeTensors(data: safetensorsBytes(#"{"__metadata__":{\#(metadata)}}"#))
        #expect(many.metadata.count == 100_000 && many.names.isEmpty)
    }

    // MARK: values

    /// Float64 data is rounded to nearest Float: beyond Float's range it becomes
    /// ±infinity (from the tie Float.max + ½ulp = 3.4028235677973366e38 on, which
    /// rounds to even: +inf), just below the tie Float.max; NaN stays NaN; values below
    /// half the smallest subnormal become ±0. The same in both formats. A finite value
    /// that becomes infinite is an error unless `allowingOverflow` (FileConsistencyTests).
    @Test func float64OutsideFloatRange() throws {
        let max = Double(Float.greatestFiniteMagnitude)
        let values: [Double] = [1e300, -1e300, .nan, 1e-300, -1e-300, 3.4028235677973366e38, max * (1 + 0x1p-26),
                                0x1p-149, 0x1p-151]
        let expected: [Float] = [.infinity, -.infinity, .nan, 0, -0.0, .infinity, .greatestFiniteMagnitude, 0x1p-149, 0]
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        let header = #"{"d":{"dtype":"F64","shape":[9],"data_offsets":[0,72]}}"#
        let safetensors = try SafeTensors(data: safetensorsBytes(header, bytes))
        let npy = npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (9,), }", bytes)
        #expect(throws: NormKitError.self) { try safetensors.tensor(named: "d") }
        #expect(throws: NormKitError.self) { try Tensor(npyData: npy) }
        let fromSafetensors = try safetensors.tensor(named: "d", allowingOverflow: true).scalars
        let fromNPY = try Tensor(npyData: npy, allowingOverflow: true).scalars
        for got in [fromSafetensors, fromNPY] {
            #expect(bitwiseEqual(got.map { $0.isNaN ? .nan : $0 }, expected), "\(got)")
        }
    }

    // MARK: seeded mutations

    /// Seeded mutations of every fixture: bit flips, byte values, truncations, deleted,
    /// inserted and duplicated ranges, a rewritten length field, and digits in the
    /// header changed to other digits (valid JSON or Python, inconsistent sizes). Each
    /// result must be refused with a NormKitError or read consistently, as the fuzz
    /// targets require: every safetensors tensor converts (or is `unsupported`) with the
    /// header's shape, and a .npy tensor survives NormKit's writer bit for bit.
    /// NORMKIT_FUZZ_VERBOSE=1 prints each case's seed first, to find one that traps.
    @Test func seededMutationsOfEveryFixtureNeverTrap() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.directory.path).sorted()
        let fixtures = try names.map { (name: $0, bytes: [UInt8](try Fixtures.data($0))) }
        let verbose = PropertyRun.environment("NORMKIT_FUZZ_VERBOSE") == "1"
        var outcomes: [String: Int] = [:]
        PropertyRun.check("seededMutationsOfEveryFixtureNeverTrap", cases: 3000) { g, check in
            if verbose { print("mutation case seed \(PropertyRun.hex(g.rng.next()))") }
            let fixture = g.rng.pick(fixtures)
            var bytes = fixture.bytes
            var applied: [String] = []
            for _ in 0..<g.rng.int(1...3) { applied.append(mutate(&bytes, &g.rng)) }
            let data = Data(bytes)
            let what = "\(fixture.name) after \(applied)"
            if fixture.name.hasSuffix(".safetensors") {
                let file: SafeTensors
                do { file = try SafeTensors(data: data) } catch {
                    outcomes["safetensors refused", default: 0] += 1
                    return
                }
                outcomes["safetensors read", default: 0] += 1
                check.require(file.names == file.names.sorted(), "\(what): names not sorted")
                for name in file.names {
                    guard let info = file.info(named: name) else { check.require(false, "\(what): \(name) has no entry"); continue }
                    do {
                        let t = try file.tensor(named: name)
                        check.require(t.shape == info.shape, "\(what): \(name) shape \(t.shape) != \(info.shape)")
                    } catch {
                        guard case .unsupported? = error as? NormKitError else {
                            check.require(false, "\(what): \(name): \(error)")
                            continue
                        }
                    }
                }
            } else {
                let t: Tensor
                do { t = try Tensor(npyData: data) } catch {
                    outcomes["npy refused", default: 0] += 1
                    return
                }
                outcomes["npy read", default: 0] += 1
                let header = try NPYHeader(npyData: data)
                check.require(header.shape == t.shape, "\(what): shape \(t.shape) != header \(header.shape)")
                let again = try Tensor(npyData: t.npyData())
                check.require(bitwiseEqual(again.scalars, t.scalars) && again.shape == t.shape, "\(what): round trip changed it")
            }
        }
        // Both outcomes happen for both formats, or the mutations are too weak or too strong.
        for key in ["safetensors refused", "safetensors read", "npy refused", "npy read"] {
            #expect(outcomes[key, default: 0] > 20, "\(outcomes)")
        }
    }
}

/// Applies one random mutation to `bytes`; returns what it did.
private func mutate(_ bytes: inout [UInt8], _ rng: inout TestRNG) -> String {
    let n = bytes.count
    func position() -> Int { n == 0 ? 0 : rng.int(0...(n - 1)) }
    switch rng.int(0...8) {
    case 0 where n > 0:
        let i = position(), bit = rng.int(0...7)
        bytes[i] ^= UInt8(1 << bit)
        return "flip bit \(bit) of byte \(i)"
    case 1 where n > 0:
        let i = position(), v = rng.pick([0, 0xFF, 0x7F, 0x80, 0x20, 0x22, 0x2C, 0x5B, 0x7B, UInt8(rng.int(0...255))])
        bytes[i] = v
        return "byte \(i) = \(v)"
    case 2:
        let k = rng.int(0...n)
        bytes.removeSubrange(k...)
        return "truncate to \(k)"
    case 3 where n > 0:
        let i = position(), k = rng.int(1...min(16, n - i))
        bytes.removeSubrange(i..<(i + k))
        return "delete \(k) at \(i)"
    case 4:
        let i = rng.int(0...n), k = rng.int(1...16)
        bytes.insert(contentsOf: (0..<k).map { _ in UInt8(rng.int(0...255)) }, at: i)
        return "insert \(k) at \(i)"
    case 5 where n > 1:
        let i = position(), k = rng.int(1...min(64, n - i)), at = rng.int(0...n)
        bytes.insert(contentsOf: bytes[i..<(i + k)], at: at)
        return "duplicate \(k) from \(i) at \(at)"
    case 6 where n >= 12:
        // The length field: safetensors' 8 bytes at 0, .npy's 2 or 4 bytes at 8.
        let safetensors = bytes[0] != 0x93
        let offset = safetensors ? 0 : 8, width = safetensors ? 8 : (bytes[6] == 1 ? 2 : 4)
        let old = (0..<width).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
        let v = rng.pick([0, 1, old &- 1, old &+ 1, old &+ 8, n, n - offset - width, Int(Int32.max), -1])
        for k in 0..<width { bytes[offset + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
        return "length field \(old) -> \(v)"
    default:
        // A digit in the header becomes another digit: still valid syntax, other sizes.
        let headerEnd = min(n, bytes.first == 0x93 ? 10 + 65536 : 8 + 65536)
        let digits = (0..<headerEnd).filter { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 }
        guard let i = digits.isEmpty ? nil : rng.pick(digits) else { return "no digit" }
        let d = UInt8(rng.int(0x30...0x39))
        bytes[i] = d
        return "digit at \(i) = \(Character(Unicode.Scalar(d)))"
    }
}
