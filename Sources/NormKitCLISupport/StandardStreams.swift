// Everything `normkit` and `normkit-dev` write to their standard streams goes through
// here, so that a write error is never ignored and no message carries raw terminal
// control characters (docs/reliability.md, "Command line"):
//
// - `checkedPrint`, which each command module's `print` shadows Swift's with: it writes
//   with write(2) to fd 1 and, when that fails (`> /dev/full`, a closed pipe with
//   SIGPIPE ignored), reports "standard output: <reason>" on stderr and exits with
//   status 1. stdio's buffered stdout is never used, so nothing can be lost silently in
//   a buffer flushed at exit.
// - `StandardOutput.write` writes bulk data (an .npy stream) and throws the same error.
// - `CommandMain.run`, each command's `main`, sends every error message through
//   NormKit's sanitiser.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ArgumentParser
import NormKit

package enum StandardOutput {
    /// Writes every byte of `bytes` to fd 1, retrying short writes and EINTR.
    ///
    /// - Throws: ``NormKitError/io(path:reason:)`` naming "standard output".
    package static func write(_ bytes: UnsafeRawBufferPointer) throws(NormKitError) {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = posixWrite(1, p, min(left, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: "standard output", reason: String(cString: strerror(errno)))
            }
            p += n
            left -= n
        }
    }

    package static func write(_ data: Data) throws(NormKitError) {
        let result = data.withUnsafeBytes { raw -> NormKitError? in
            do throws(NormKitError) { try write(raw); return nil } catch { return error }
        }
        if let result { throw result }
    }

    package static func write(_ text: String) throws(NormKitError) {
        var text = text
        let result = text.withUTF8 { buffer -> NormKitError? in
            do throws(NormKitError) { try write(UnsafeRawBufferPointer(buffer)); return nil } catch { return error }
        }
        if let result { throw result }
    }
}

/// `Swift.print`'s text, written unbuffered to fd 1; a write error ends the process with
/// status 1 and one line on stderr. Each command module shadows `print` with it.
package func checkedPrint(_ items: [Any], separator: String = " ", terminator: String = "\n") {
    let text = items.map { "\($0)" }.joined(separator: separator) + terminator
    do { try StandardOutput.write(text) } catch {
        writeStderr("Error: \(error)\n")
        terminate(1)
    }
}

/// exit(3), named apart from ParsableCommand's `exit(withError:)`.
func terminate(_ status: Int32) -> Never { exit(status) }

private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }

package enum Arguments {
    /// Refuses an option or flag given twice (`--weights a --weights b` would silently
    /// take the last): every `--name` or `--name=value` before a `--` must be unique.
    /// A value that itself starts with `--` can only be given as `--name=value`, or to a
    /// numeric option, where it is refused anyway.
    package static func checkNoRepeats(_ arguments: some Sequence<String>) throws {
        var seen: Set<String> = []
        for argument in arguments {
            if argument == "--" { return }
            guard argument.hasPrefix("--"), argument.count > 2 else { continue }
            let name = String(argument.prefix { $0 != "=" })
            guard seen.insert(name).inserted else {
                throw ValidationError("\(name) is given more than once; give it once")
            }
        }
    }
}

package enum CommandMain {
    /// ArgumentParser's `main` for `Command`, with three differences: a repeated option is
    /// an error, help goes through the checked print, and every error message is
    /// sanitised line by line (control characters escaped, each line capped) before it
    /// reaches stderr.
    package static func run<Command: ParsableCommand>(_: Command.Type) {
        do {
            var command = try Command.parseAsRoot()
            try Arguments.checkNoRepeats(CommandLine.arguments.dropFirst())
            try command.run()
        } catch {
            let text = Command.fullMessage(for: error)
            let code = Command.exitCode(for: error)
            if code == .success {
                if !text.isEmpty { checkedPrint([text]) }
            } else if !text.isEmpty {
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { NormKitError.sanitized(String($0), limit: 4000) }
                writeStderr(lines.joined(separator: "\n") + "\n")
            }
            terminate(code.rawValue)
        }
    }
}
