// Issue 19, items 2, 3 and 8, the library's side: readers take pipes and other streams,
// check the magic before reading on and read at most what the header declares (plus one
// byte); a stream's allocation passes the memory admission check; every name, path and
// reason in an error message is sanitised and capped. scripts/cli-tests.sh checks the
// same classes through the `normkit` command.
import Foundation
import Testing
@testable import NormKit
@testable import NormKitIO

#if os(Linux)
import Glibc

/// A pipe whose write end is filled with `bytes` (at most the 64 KiB pipe buffer, so the
/// writer never blocks) and then closed unless `keepOpen`; returns the read end.
private func pipeHolding(_ bytes: [UInt8], keepOpen: Bool = false) throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [0, 0]
    #expect(pipe(&fds) == 0)
    precondition(bytes.count < 65536)
    let written = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
    #expect(written == bytes.count)
    if !keepOpen { close(fds[1]) }
    return (fds[0], fds[1])
}

private func npyFile(shape: [Int], scalars: [Float]) throws -> [UInt8] {
    [UInt8](try Tensor(shape: shape, scalars: scalars).npyData())
}

@Suite("Reliability: streams as inputs")
struct StreamInputTests {
    /// A pipe, named through /dev/fd/N, reads as the file it carries, for both formats.
    @Test func pipesAreInputs() throws {
        let x = Tensor.randomNormal([3, 5], seed: 7)
        let npy = try pipeHolding([UInt8](x.npyData()))
        defer { close(npy.read) }
        #expect(try Tensor(npyContentsOf: URL(fileURLWithPath: "/dev/fd/\(npy.read)")) == x)

        let st = try SafeTensors.encode(["a.weight": x, "b": Tensor.randomNormal([4], seed: 8)])
        let pipe = try pipeHolding([UInt8](st))
        defer { close(pipe.read) }
        let file = try SafeTensors(contentsOf: URL(fileURLWithPath: "/dev/fd/\(pipe.read)"))
        #expect(try file.tensor(named: "a.weight") == x)
    }

    /// /dev/zero is refused after its first bytes, for both formats: the magic (or the
    /// header's first byte) is checked before anything more is read.
    @Test func endlessStreamsAreRefusedAtTheirFirstBytes() {
        let zero = URL(fileURLWithPath: "/dev/zero")
        #expect(throws: NormKitError.invalidFile(format: "npy", offset: 0, reason: "not a .npy file: it must start with \\x93NUMPY")) {
            try Tensor(npyContentsOf: zero)
        }
        #expect { try SafeTensors(contentsOf: zero) } throws: { error in
            guard case .invalidFile(format: "safetensors", _, _)? = error as? NormKitError else { return false }
            return true
        }
        // A stream that starts like neither format: refused on the first bytes as well.
        let text = try? pipeHolding(Array("hello, world, this is text\n".utf8), keepOpen: true)
        defer { if let text { close(text.read); close(text.write) } }
        if let text {
            // The writer stays open: reading past the first bytes would block forever.
            #expect(throws: NormKitError.self) { try Tensor(npyContentsOf: URL(fileURLWithPath: "/dev/fd/\(text.read)")) }
        }
    }

    /// Exactly the declared length and one byte more are read: the rest stays in the pipe.
    @Test func readsAreBoundedByTheHeader() throws {
        let file = try npyFile(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let extra = 50_000
        let p = try pipeHolding(file + [UInt8](repeating: 7, count: extra))
        defer { close(p.read) }
        #expect { try Tensor(npyContentsOf: URL(fileURLWithPath: "/dev/fd/\(p.read)")) } throws: { error in
            guard case let .invalidFile(_, _, reason)? = error as? NormKitError else { return false }
            return reason.contains("bytes follow")
        }
        var left = [UInt8](repeating: 0, count: extra * 2)
        var total = 0
        while true {
            let n = left.withUnsafeMutableBytes { read(p.read, $0.baseAddress! + total, $0.count - total) }
            if n <= 0 { break }
            total += n
        }
        #expect(total == extra - 1)

        let st = [UInt8](try SafeTensors.encode(["w": Tensor.randomNormal([8], seed: 2)]))
        let q = try pipeHolding(st + [UInt8](repeating: 0, count: extra))
        defer { close(q.read) }
        #expect(throws: NormKitError.self) { try SafeTensors(contentsOf: URL(fileURLWithPath: "/dev/fd/\(q.read)")) }
        total = 0
        while true {
            let n = left.withUnsafeMutableBytes { read(q.read, $0.baseAddress! + total, $0.count - total) }
            if n <= 0 { break }
            total += n
        }
        #expect(total == extra - 1)
    }

    /// A header that declares more data than this process may allocate is refused
    /// before the data is read (the writer stays open: reading on would block).
    @Test func aDeclaredLengthBeyondMemoryIsRefusedBeforeReading() throws {
        var header = Array("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000, 64), }".utf8)
        header += [UInt8](repeating: 0x20, count: (64 - (10 + header.count + 1) % 64) % 64) + [0x0A]
        let file: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.count & 255), UInt8(header.count >> 8)] + header
        let p = try pipeHolding(file, keepOpen: true)
        defer { close(p.read); close(p.write) }
        #expect { try Tensor(npyContentsOf: URL(fileURLWithPath: "/dev/fd/\(p.read)")) } throws: { error in
            guard case let .invalidArgument(name, _, actual)? = error as? NormKitError else { return false }
            return name.contains("header declares") && actual.contains("bytes")
        }
    }
}

@Suite("Reliability: the memory budget")
struct MemoryBudgetTests {
    /// The lowest limit wins, and an eighth of it (at least 128 MiB) is kept as headroom.
    @Test func theLowestLimitLessHeadroomIsAdmitted() throws {
        let gib = 1 << 30
        var limits = MemoryBudget.Limits(addressSpace: 3 * gib, cgroup: 2 * gib, available: 16 * gib, physical: nil)
        #expect(limits.lowest == 2 * gib)
        #expect(limits.admissible == 2 * gib - 2 * gib / 8)
        #expect(limits.lowestName.contains("cgroup"))
        limits.cgroup = nil
        limits.addressSpace = 512 << 20
        #expect(limits.admissible == (512 - 128) << 20)
        #expect(limits.lowestName.contains("ulimit -v"))
        #expect(throws: Never.self) { try MemoryBudget.admit((512 - 128) << 20, for: "t", limits: limits) }
        #expect(throws: NormKitError.self) { try MemoryBudget.admit((512 - 128) << 20 + 1, for: "t", limits: limits) }
        #expect(throws: NormKitError.self) { try MemoryBudget.admit(nil, for: "t", limits: limits) }
        #expect(MemoryBudget.Limits().admissible == Int.max)
    }

    /// This process's own numbers: MemAvailable is read, and the budget is below it.
    @Test func currentLimitsAreRead() {
        let limits = MemoryBudget.current()
        #expect(limits.available != nil)
        #expect(limits.admissible < limits.available!)
        #expect(limits.admissible > 0)
    }
}
#endif

@Suite("Reliability: error messages are sanitised")
struct ErrorSanitisingTests {
    /// Every case of NormKitError that carries a name, path or reason: an OSC escape, a
    /// clear-screen, a bidirectional override and a 1,000,000-character name come out
    /// escaped and capped, and the end of the sentence survives the cap.
    @Test func everyTextFieldIsSanitisedAndCapped() {
        let hostile = ["a\u{1B}]0;pwned\u{07}b", "x\u{1B}[2Jy", "r\u{202E}txt.exe", "line\nbreak\r", "del\u{7F}c1\u{9B}"]
        let huge = String(repeating: "n", count: 1_000_000)
        for text in hostile + [huge, huge + "\u{1B}[2J"] {
            let errors: [NormKitError] = [
                .parameterShapeMismatch(name: text, expected: [1], actual: [2]),
                .shapeMismatch(name: text, expected: [1], actual: [2]),
                .invalidArgument(name: text, expected: text, actual: text),
                .invalidFile(format: "safetensors", offset: 3, reason: "tensor '\(text)' has bad offsets"),
                .missingTensor(name: text, available: [text, text, "ok"]),
                .layerKindMismatch(name: text, reason: text),
                .io(path: text, reason: text),
                .unsupported(format: "npy", reason: "dtype '\(text)' is not supported"),
            ]
            for error in errors {
                let message = error.description
                let raw = message.unicodeScalars.first {
                    $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value)
                }
                #expect(raw == nil, "\(error)")
                #expect(message.count < 8000, "a \(text.count)-character field gives a \(message.count)-character message")
            }
        }
        let cut = NormKitError.invalidFile(format: "safetensors", offset: 3, reason: "tensor '\(huge)' has bad offsets").description
        #expect(cut.hasSuffix("' has bad offsets"))
        #expect(cut.contains("(\(8 + 1_000_000 + 17) characters) ..."))
        #expect(NormKitError.sanitized("a\u{1B}b") == "a\\u{1B}b")
        #expect(NormKitError.sanitized("short") == "short")
    }
}
