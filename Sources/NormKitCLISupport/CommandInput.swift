// Checking what the user typed before anything is allocated or read: numeric flags and
// lists (a clear error naming the flag, never a trap or a silently dropped item), sizes
// against the machine's memory, eps as typed, and file arguments (`-` for stdin/stdout,
// an output that would overwrite an input). docs/reliability.md, "Command line", lists
// each case and scripts/cli-tests.sh checks it.
import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

package enum CommandInput {
    /// A comma-separated list of whole numbers >= `minimum`: every item must be one
    /// (`1,,768`, `768,abc`, `7,` and the empty string are errors naming the flag).
    package static func integerList(_ text: String, flag: String, minimum: Int, example: String) throws -> [Int] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        var values: [Int] = []
        for (i, item) in items.enumerated() {
            let trimmed = String(item.trimmingWhitespace())
            guard let n = Int(trimmed), n >= minimum else {
                let what = trimmed.isEmpty ? "an empty item" : "'\(trimmed)'"
                throw ValidationError(
                    "\(flag) must be comma-separated whole numbers >= \(minimum), like \(example); item \(i + 1) of '\(text)' is \(what)")
            }
            values.append(n)
        }
        return values
    }

    /// The product of `dims`, or an error naming `what` when it overflows Int.
    package static func elementCount(_ dims: [Int], what: String) throws -> Int {
        var count = 1
        if dims.contains(0) { return 0 }
        for d in dims {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw ValidationError("\(what) holds more elements than Int can count (\(dims.map(String.init).joined(separator: " x ")))") }
            count = p
        }
        return count
    }

    /// The machine's physical memory in bytes.
    package static var physicalMemory: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return Int.max }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: size)
        return overflow ? Int.max : bytes
    }

    /// Refuses a command that would allocate more than the machine's memory: `elements`
    /// values of `bytesPerElement` (all the tensors the command holds at once, per element).
    package static func checkFitsInMemory(elements: Int, bytesPerElement: Int, what: String) throws {
        let memory = physicalMemory
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: bytesPerElement)
        guard overflow || bytes > memory else { return }
        let need = overflow ? "more than \(Int.max) bytes" : "\(bytes) bytes (\(gib(bytes)))"
        throw ValidationError("\(what) needs \(need) for its tensors; this machine has \(memory) bytes (\(gib(memory))) of memory")
    }

    private static func gib(_ bytes: Int) -> String {
        let g = Double(bytes) / Double(1 << 30)
        return g >= 1024 ? "\(Int(g / 1024)) TiB" : "\((g * 10).rounded() / 10) GiB"
    }

    /// `--eps` as typed: a finite number > 0 that stays > 0 as a Float (so `1e-50`, which
    /// underflows to 0, is named as typed instead of being blamed on a file as `0.0`).
    package static func epsilon(_ text: String) throws -> Float {
        let trimmed = String(Substring(text).trimmingWhitespace())
        guard let value = Double(trimmed), value.isFinite else {
            throw ValidationError("--eps must be a finite number > 0, like 1e-5; got '\(text)'")
        }
        guard value > 0 else { throw ValidationError("--eps must be > 0 (it is added to the variance); got \(trimmed)") }
        let single = Float(value)
        guard single > 0, single.isFinite else {
            let limit = single.isFinite ? "below Float's smallest positive value, 1e-45, and rounds to 0" : "beyond Float's largest value, 3.4e38"
            throw ValidationError("--eps \(trimmed) is \(limit); give a value in 1e-45...3.4e38")
        }
        return single
    }

    /// Reads all of standard input.
    package static func readStandardInput() throws -> Data {
        var out = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(0, &chunk, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw ValidationError("cannot read standard input: \(String(cString: strerror(errno)))")
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Writes `data` to standard output (a pipe, a terminal or a redirected file, in place).
    /// stdio's fwrite retries short writes and EINTR (a stream of its own on fd 1: the
    /// global `stdout` is not concurrency-safe to name in Swift 6; nothing else is printed
    /// to stdout when the data goes there).
    package static func writeStandardOutput(_ data: Data) throws {
        guard let out = fdopen(1, "wb") else {
            throw ValidationError("cannot write standard output: \(String(cString: strerror(errno)))")
        }
        let written = data.withUnsafeBytes { raw in raw.isEmpty ? 0 : fwrite(raw.baseAddress, 1, raw.count, out) }
        guard written == data.count, fflush(out) == 0 else {
            throw ValidationError("cannot write standard output: \(String(cString: strerror(errno)))")
        }
    }

    /// The device and inode `path` leads to (after symlinks; `-` is `standardStream`),
    /// or nil when it does not exist.
    private static func identity(_ path: String, standardStream: Int32) -> (dev: UInt64, ino: UInt64)? {
        var info = stat()
        let ok = path == "-" ? fstat(standardStream, &info) == 0 : stat(path, &info) == 0
        return ok ? (UInt64(info.st_dev), UInt64(info.st_ino)) : nil
    }

    /// Refuses an output that is one of the command's inputs (the same device and inode,
    /// so also through a symlink, a hard link or `-` redirected to it). Devices and
    /// FIFOs are streams, not files that could be overwritten, and are not compared.
    package static func checkOutput(_ output: (flag: String, path: String), isNotAnyOf inputs: [(flag: String, path: String)]) throws {
        guard let out = identity(output.path, standardStream: 1) else { return }
        var info = stat()
        let isRegular = (output.path == "-" ? fstat(1, &info) : stat(output.path, &info)) == 0
            && (info.st_mode & S_IFMT) == S_IFREG
        guard isRegular else { return }
        for input in inputs {
            guard let id = identity(input.path, standardStream: 0), id == out else { continue }
            let target = output.path == "-" ? "standard output" : "'\(output.path)'"
            throw ValidationError(
                "\(output.flag) \(target) is the same file as \(input.flag) '\(input.path)' (device \(id.dev), inode \(id.ino)); writing it would destroy the input, choose another output")
        }
    }
}
