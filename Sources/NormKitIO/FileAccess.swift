// Reading and writing whole files for the checkpoint formats. Only Data and URL come
// from Foundation (the lighter FoundationEssentials where the toolchain has it); writes
// are plain POSIX calls, so what happens to the target is decided here, not by
// Foundation's atomic write (which replaced devices and symlinks with regular files and
// reset the mode; docs/reliability.md, "Writing files").
import NormKit
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// File reading for `normkit` (this package only): the library's readers, for a path as
/// typed (no URL, so a working directory longer than PATH_MAX works) or for standard input.
package enum FileInput {
    /// The bytes of `path`, or of standard input when `path` is nil, as
    /// `FileAccess.read` reads them (mapped, or framed by `format` when a stream).
    package static func read(path: String?, format: StreamFraming) throws(NormKitError) -> Data {
        guard let path else { return try FileAccess.read(fileDescriptor: 0, path: "standard input", framing: format) }
        return try FileAccess.read(path: path, framing: format)
    }
}

enum FileAccess {
    /// The file's bytes (docs/reliability.md, "Reading files"):
    ///
    /// - a regular file of non-zero size is memory-mapped: a multi-gigabyte checkpoint
    ///   costs address space, not memory, and only the pages of the tensors read are
    ///   touched (a file another process truncates while it is mapped makes the next
    ///   access to the lost pages fault, SIGBUS: the price of mapping);
    /// - anything else (a pipe, a FIFO, `/dev/stdin`, `/dev/fd/N`, a character device, a
    ///   /proc file whose size reads 0) is read as a stream, framed by `framing`: its
    ///   first bytes must be the format's magic, and at most what the header declares
    ///   plus one byte (so trailing data is still reported) is read, after an admission
    ///   check against the memory this process may still allocate. `/dev/zero` is refused
    ///   after a few bytes instead of filling memory.
    ///
    /// The path is opened as given (relative to the working directory, which may be
    /// longer than PATH_MAX), not through Foundation's URL reader.
    static func read(_ url: URL, framing: StreamFraming) throws(NormKitError) -> Data {
        try read(path: url.path, framing: framing)
    }

    /// ``read(_:framing:)`` for a path.
    static func read(path: String, framing: StreamFraming) throws(NormKitError) -> Data {
        // Opened non-blocking, so a FIFO nobody writes to is an empty stream at once
        // instead of a wait that may never end (a writer already waiting in its own open
        // counts, so `cat x > fifo & normkit ... fifo` works); then reads block as usual.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw .io(path: path, reason: errnoMessage()) }
        defer { close(fd) }
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 else { throw .io(path: path, reason: errnoMessage()) }
        return try read(fileDescriptor: fd, path: path, framing: framing)
    }

    /// ``read(_:framing:)`` for an open file descriptor (`0` for standard input); `path`
    /// names it in errors. The descriptor is not closed.
    static func read(fileDescriptor fd: Int32, path: String, framing: StreamFraming) throws(NormKitError) -> Data {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(path: path, reason: errnoMessage()) }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            throw .io(path: path, reason: String(cString: strerror(EISDIR)))
        case S_IFREG where info.st_size > 0:
            return try map(fd, size: Int(info.st_size), path: path)
        default:
            return try readStream(fd, path: path, framing: framing)
        }
    }

    /// Maps `size` bytes of the regular file `fd`, read-only; unmapped when the Data goes.
    private static func map(_ fd: Int32, size: Int, path: String) throws(NormKitError) -> Data {
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw .io(path: path, reason: errnoMessage())
        }
        return Data(bytesNoCopy: base, count: size, deallocator: .custom { p, n in munmap(p, n) })
    }

    /// Reads a stream as `framing` allows: the bytes the format needs to say how long
    /// it is, then (after the admission check) up to that length plus one byte.
    private static func readStream(_ fd: Int32, path: String, framing: StreamFraming) throws(NormKitError) -> Data {
        // One malloc'd buffer, handed to Data without a copy: a stream costs its length once.
        var base: UnsafeMutableRawPointer?
        var count = 0
        var atEnd = false
        var done = false
        defer { if !done { free(base) } }
        // Reads until the buffer holds `target` bytes or the stream ends.
        func fill(to target: Int) throws(NormKitError) {
            guard count < target, !atEnd else { return }
            guard let grown = realloc(base, target) else {
                throw .io(path: path, reason: "\(String(cString: strerror(ENOMEM))) (\(target) bytes)")
            }
            base = grown
            while count < target {
                let n = posixRead(fd, grown + count, min(target - count, 1 << 30))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .io(path: path, reason: errnoMessage())
                }
                if n == 0 { atEnd = true; return }
                count += n
            }
        }
        var want = framing.initialBytes
        decide: while true {
            try fill(to: want)
            switch try framing.decide(UnsafeRawBufferPointer(start: base, count: count), atEnd: atEnd) {
            case let .need(bytes) where bytes > count && !atEnd:
                want = bytes  // the header is not complete yet
            case .need:
                break decide  // the stream ended: the parser reports what is missing
            case let .total(bytes):
                // The declared length, plus one byte so trailing data is still reported.
                let (end, overflow) = bytes.addingReportingOverflow(1)
                try MemoryBudget.admit(overflow ? nil : end, for: "\(path): the \(bytes) bytes its header declares")
                try fill(to: end)
                break decide
            }
        }
        guard let base, count > 0 else { return Data() }
        done = true
        return Data(bytesNoCopy: base, count: count, deallocator: .free)
    }

    /// Writes `data` to `url` the way a careful Unix tool does (docs/reliability.md,
    /// "Writing files"):
    ///
    /// - symlinks are followed: the file they lead to is replaced, the links stay;
    /// - a target that is not a regular file (a device, a FIFO, a socket, `/dev/stdout`)
    ///   is opened and written in place, as a stream;
    /// - a regular file is replaced atomically: the data goes to an unnamed file in the
    ///   target's directory (`O_TMPFILE`), which gets a name only when complete, so a
    ///   crash, SIGINT, SIGTERM or SIGKILL leaves the old file and no temporary; where
    ///   `O_TMPFILE` is not available, a visible `.NAME.normkit-XXXXXX` next to the
    ///   target, removed on any error;
    /// - a replaced file keeps its permission bits (and, as root, its owner); a new one
    ///   gets `0666 & ~umask`;
    /// - a read-only regular file (no write permission for the caller, or no write bit
    ///   at all, which also stops root) is refused, not replaced;
    /// - a path ending in `/`, or naming a directory, is refused.
    static func write(_ data: Data, to url: URL) throws(NormKitError) {
        let path = url.path
        if url.hasDirectoryPath || path.hasSuffix("/") {
            var info = stat()
            let isDirectory = stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
            throw .io(path: path, reason: isDirectory ? "Is a directory" : "Not a directory (the path ends in '/')")
        }
        // A target that exists and is not a regular file: write into it.
        var info = stat()
        if stat(path, &info) == 0 {
            switch info.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw .io(path: path, reason: "Is a directory")
            default: return try writeStream(data, path: path)
            }
        }
        let target = try resolveSymlinks(path)
        var existing = stat()
        let exists = stat(target, &existing) == 0
        if exists {
            if (existing.st_mode & S_IFMT) != S_IFREG { return try writeStream(data, path: path) }
            if access(target, W_OK) != 0 || (existing.st_mode & 0o222) == 0 {
                throw .io(path: path, reason: "Permission denied (the file is read-only; NormKit does not replace it)")
            }
        }
        try replaceRegular(data, target: target, reportedPath: path, mode: exists ? existing : nil)
    }

    /// Follows the symlink chain at `path` (at most 40 links, as the kernel does) to the
    /// path of the file it leads to, which need not exist yet (a dangling link is
    /// written through, creating its target, as a shell redirection does).
    static func resolveSymlinks(_ path: String) throws(NormKitError) -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(current, &buffer, buffer.count - 1)
            guard n >= 0 else { throw .io(path: path, reason: errnoMessage()) }
            let link = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            current = link.hasPrefix("/") ? link : directory(of: current) + "/" + link
        }
        throw .io(path: path, reason: String(cString: strerror(ELOOP)))
    }

    /// The directory part of `path` ("." for a bare name).
    static func directory(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == path.utf8.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// Opens an existing non-regular file (device, FIFO, socket) and writes `data` into it.
    private static func writeStream(_ data: Data, path: String) throws(NormKitError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw .io(path: path, reason: errnoMessage()) }
        defer { close(fd) }
        try writeAll(data, to: fd, path: path)
    }

    /// Writes every byte of `data` to `fd`, retrying short writes and EINTR.
    static func writeAll(_ data: Data, to fd: Int32, path: String) throws(NormKitError) {
        let failure: Int32? = data.withUnsafeBytes { raw -> Int32? in
            guard var p = raw.baseAddress else { return nil }
            var left = raw.count
            while left > 0 {
                let n = posixWrite(fd, p, min(left, 1 << 30))
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                p += n
                left -= n
            }
            return nil
        }
        if let failure { throw .io(path: path, reason: String(cString: strerror(failure))) }
    }

    /// Linux's `O_TMPFILE` (`__O_TMPFILE | O_DIRECTORY`; the macro does not import).
    private static let tmpfileFlag: Int32? = {
        #if os(Linux)
        return 0o20000000 | O_DIRECTORY
        #else
        return nil
        #endif
    }()

    /// Replaces (or creates) the regular file `target` with `data`, atomically.
    private static func replaceRegular(
        _ data: Data, target: String, reportedPath: String, mode existing: stat?
    ) throws(NormKitError) {
        let dir = directory(of: target)
        // A new file is created with 0666 and the kernel applies the umask; a replaced one
        // gets the old file's bits with fchmod.
        let mode = existing.map { $0.st_mode & 0o7777 }

        // Prefer an unnamed file: nothing to clean up if the process dies.
        if let flag = tmpfileFlag {
            let fd = open(dir, O_WRONLY | O_CLOEXEC | flag, mode_t(0o666))
            if fd >= 0 {
                defer { close(fd) }
                try fill(fd, data, mode: mode, existing: existing, path: reportedPath)
                // Name it by linkat through /proc (AT_EMPTY_PATH would need
                // CAP_DAC_READ_SEARCH). A new file gets its final name directly; an existing
                // one is replaced by a rename from a temporary name (linkat cannot replace).
                let proc = "/proc/self/fd/\(fd)"
                let linkName = existing == nil ? target : temporaryName(for: target)
                if linkat(AT_FDCWD, proc, AT_FDCWD, linkName, AT_SYMLINK_FOLLOW) == 0 {
                    if existing == nil { return }
                    guard rename(linkName, target) == 0 else {
                        let e = errno
                        unlink(linkName)
                        throw .io(path: reportedPath, reason: String(cString: strerror(e)))
                    }
                    return
                }
                // ENOENT: /proc is not mounted; fall through to a named temporary.
                if errno != ENOENT { throw .io(path: reportedPath, reason: errnoMessage()) }
            } else if errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL {
                throw .io(path: reportedPath, reason: errnoMessage())
            }
        }

        // A named temporary next to the target (same filesystem, so rename is atomic).
        var temp = "", fd: Int32 = -1
        for _ in 0..<100 {
            temp = temporaryName(for: target)
            fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(0o666))
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw .io(path: reportedPath, reason: errnoMessage()) }
        do {
            defer { close(fd) }
            try fill(fd, data, mode: mode, existing: existing, path: reportedPath)
        } catch {
            unlink(temp)
            throw error
        }
        guard rename(temp, target) == 0 else {
            let e = errno
            unlink(temp)
            throw .io(path: reportedPath, reason: String(cString: strerror(e)))
        }
    }

    /// Writes the data, sets the mode (and owner, when replacing as root), and syncs.
    private static func fill(_ fd: Int32, _ data: Data, mode: mode_t?, existing: stat?, path: String) throws(NormKitError) {
        try writeAll(data, to: fd, path: path)
        if let existing, geteuid() == 0 { _ = fchown(fd, existing.st_uid, existing.st_gid) }
        if let mode, fchmod(fd, mode) != 0 { throw .io(path: path, reason: errnoMessage()) }
        guard fsync(fd) == 0 else { throw .io(path: path, reason: errnoMessage()) }
    }

    private static func baseName(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }

    /// `.NAME.normkit-<pid>-<random>` next to `target`: the name a finished unnamed file
    /// has for the instant before it is renamed over the target, or the fallback's
    /// temporary.
    private static func temporaryName(for target: String) -> String {
        directory(of: target) + "/." + baseName(of: target) + ".normkit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    static func errnoMessage() -> String { String(cString: strerror(errno)) }

    /// The system's one-line message ("No such file or directory") rather than
    /// Foundation's structured dump of the error.
    static func message(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError,
           let posix = cocoa.userInfo["NSUnderlyingError"] as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        if let posix = error as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return String(describing: error)
    }
}

// File-scope wrappers: inside `FileAccess`, `read` and `write` name its own methods.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
