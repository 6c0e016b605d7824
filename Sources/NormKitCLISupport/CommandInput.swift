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
            if let n = Int(trimmed), n < minimum {
                throw ValidationError("\(flag) items must be >= \(minimum); item \(i + 1) of '\(text)' is \(n)")
            }
            guard let n = Int(trimmed) else {
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

    /// The one admission check for what a command allocates (docs/reliability.md,
    /// "Memory"): `elements` values of `bytesPerElement` (all the tensors the command
    /// holds at once, per element) must fit in what this process may still allocate, the
    /// lowest of RLIMIT_AS less what is mapped, the cgroup's limit less its use, and
    /// MemAvailable, less headroom (NormKit's `MemoryBudget`, which the readers of
    /// streams use too). Refused with a message naming `what`, before anything is allocated.
    package static func checkFitsInMemory(elements: Int, bytesPerElement: Int, what: String) throws {
        let limits = MemoryBudget.current()
        let allowed = limits.admissible
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: bytesPerElement)
        guard overflow || bytes > allowed else { return }
        let need = overflow ? "more than \(Int.max) bytes" : "\(bytes) bytes (\(MemoryBudget.gib(bytes)))"
        throw ValidationError(
            "\(what) needs \(need) for its tensors; this process may allocate at most \(allowed) bytes (\(MemoryBudget.gib(allowed))) of memory: \(limits.lowestName) is \(MemoryBudget.gib(limits.lowest)), less headroom")
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

    /// A finite number as typed for `flag` (`nan`, `inf`, `1e39` and words are refused
    /// naming the flag, before anything is read).
    package static func finiteFloat(_ text: String, flag: String, example: String) throws -> Float {
        let trimmed = String(Substring(text).trimmingWhitespace())
        guard let value = Double(trimmed), value.isFinite, Float(value).isFinite else {
            throw ValidationError("\(flag) must be a finite number (within Float's range, ±3.4e38), like \(example); got '\(text)'")
        }
        return Float(value)
    }

    /// `--seed` as typed: a whole number in 0 ... 2^64-1 (`-1` is a value, refused with
    /// the range, not taken for a flag).
    package static func seed(_ text: String, flag: String = "--seed") throws -> UInt64 {
        let trimmed = String(Substring(text).trimmingWhitespace())
        guard let value = UInt64(trimmed) else {
            throw ValidationError("\(flag) must be a whole number in 0...\(UInt64.max), got '\(text)'")
        }
        return value
    }

    /// A whole number for `flag` in `range` (typed with unconditional parsing, so `-5` is
    /// a value and gets this range error rather than "Missing value").
    package static func integer(_ value: Int, flag: String, in range: ClosedRange<Int>) throws -> Int {
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
        return value
    }

    /// Whether `path` leads to the same file as standard output (the same device and
    /// inode): /dev/stdout, /proc/self/fd/1, /dev/fd/1, a symlink to any of them, or the
    /// file stdout is redirected to. Such an output is written as `-` is.
    package static func isStandardOutput(_ path: String) -> Bool {
        var out = stat(), target = stat()
        guard fstat(1, &out) == 0, stat(path, &target) == 0 else { return false }
        return out.st_dev == target.st_dev && out.st_ino == target.st_ino
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
