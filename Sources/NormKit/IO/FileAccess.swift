// Reading and writing whole files for the checkpoint formats. Only Data and URL come
// from Foundation; the lighter FoundationEssentials is used where the toolchain has it.
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

enum FileAccess {
    /// The file's bytes, memory-mapped: a multi-gigabyte checkpoint costs address
    /// space, not memory, and only the pages of the tensors read are touched.
    ///
    /// A mapped file that another process truncates while it is mapped makes the
    /// next access to the lost pages fault (SIGBUS); that is the price of mapping.
    ///
    /// An empty regular file is returned as empty `Data` without calling Foundation:
    /// its reader (swift-foundation in Swift 6.3) reads zero-size files in 4 KiB chunks,
    /// for /proc files that report size 0, and loses the chunk when there is nothing
    /// to read, 4 KiB per call (LeakSanitizer and valgrind report it; the parsers then
    /// refuse the empty file as too short anyway).
    static func read(_ url: URL) throws(NormKitError) -> Data {
        var info = stat()
        if stat(url.path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && info.st_size == 0 {
            return Data()
        }
        do {
            return try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw .io(path: url.path, reason: message(error))
        }
    }

    /// Writes `data` to `url` atomically (a temporary file, then a rename), so a
    /// crash never leaves half a file under the final name.
    static func write(_ data: Data, to url: URL) throws(NormKitError) {
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw .io(path: url.path, reason: message(error))
        }
    }

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
