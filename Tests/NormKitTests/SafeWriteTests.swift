// Writing files as a careful Unix tool does (docs/reliability.md, "Writing files"):
// symlinks followed, devices and FIFOs written in place, modes kept, read-only files and
// trailing slashes refused, and no temporary file left when the writer is killed.
// Every target here is made in a fresh temporary directory (the device is our own
// mknod'ed null device, never the machine's /dev/null).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
@testable import NormKit
@testable import NormKitIO
import Testing

@Suite("Reliability: writing files", .tags(.reliability))
struct SafeWriteTests {
    let t = Tensor.randomNormal([3, 5], seed: 11)

    private func lstatMode(_ path: String) -> mode_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode : nil
    }

    private func entries(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    /// A symlink (and a chain of two) to a regular file: the file is replaced, the links
    /// stay links. A dangling link creates its target.
    @Test func symlinkTargetIsReplacedAndTheLinkStays() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let real = dir.appendingPathComponent("real.npy").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: real))
        #expect(symlink("real.npy", dir.appendingPathComponent("link1").path) == 0)
        #expect(symlink(dir.appendingPathComponent("link1").path, dir.appendingPathComponent("link2").path) == 0)
        try t.writeNPY(to: dir.appendingPathComponent("link2"))
        #expect(lstatMode(dir.appendingPathComponent("link1").path).map { $0 & S_IFMT } == S_IFLNK)
        #expect(lstatMode(dir.appendingPathComponent("link2").path).map { $0 & S_IFMT } == S_IFLNK)
        #expect(try Tensor(npyContentsOf: URL(fileURLWithPath: real)) == t)

        #expect(symlink("sub-target.npy", dir.appendingPathComponent("dangling").path) == 0)
        try t.writeNPY(to: dir.appendingPathComponent("dangling"))
        #expect(lstatMode(dir.appendingPathComponent("dangling").path).map { $0 & S_IFMT } == S_IFLNK)
        #expect(try Tensor(npyContentsOf: dir.appendingPathComponent("sub-target.npy")) == t)
        #expect(try entries(dir) == ["dangling", "link1", "link2", "real.npy", "sub-target.npy"])
    }

    /// A FIFO is written in place as a stream (the reader gets the bytes), and stays a FIFO.
    @Test func fifoIsWrittenAsAStream() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)  // a reader first, so the writer's open does not wait
        #expect(reader >= 0)
        defer { close(reader) }
        try t.writeNPY(to: URL(fileURLWithPath: fifo))
        var got = [UInt8](repeating: 0, count: 4096)
        let n = read(reader, &got, got.count)
        #expect(try n == t.npyData().count)
        #expect(try Data(got[0..<max(0, n)]) == t.npyData())
        #expect(lstatMode(fifo).map { $0 & S_IFMT } == S_IFIFO)
    }

    /// Whether mknod of a character device works here (tried once, in a temporary directory).
    static let canMakeDevices: Bool = {
        guard let dir = try? Fixtures.temporaryDirectory() else { return false }
        defer { try? FileManager.default.removeItem(at: dir) }
        return mknod(dir.appendingPathComponent("probe").path, S_IFCHR | 0o666, dev_t(0x103)) == 0
    }()

    /// A character device (our own null device, made with mknod, root only: skipped
    /// otherwise) is written in place and stays a device; so is a symlink to it.
    @Test(.enabled(if: Self.canMakeDevices, "SKIP: this process may not mknod a character device (needs root with CAP_MKNOD)"))
    func characterDeviceIsWrittenInPlace() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let device = dir.appendingPathComponent("null").path
        // Linux's dev_t of major 1, minor 3 (makedev is a macro): (1 << 8) | 3.
        let made = mknod(device, S_IFCHR | 0o666, dev_t(0x103))
        try #require(made == 0, "mknod failed as root: errno \(errno)")
        #expect(symlink(device, dir.appendingPathComponent("out").path) == 0)
        try t.writeNPY(to: URL(fileURLWithPath: device))
        try SafeTensors.write(["t": t], to: dir.appendingPathComponent("out"))
        #expect(lstatMode(device).map { $0 & S_IFMT } == S_IFCHR)
        #expect(lstatMode(dir.appendingPathComponent("out").path).map { $0 & S_IFMT } == S_IFLNK)
        #expect(try entries(dir) == ["null", "out"])
    }

    /// A replaced file keeps its permission bits; a new one gets 0666 & ~umask.
    @Test(arguments: [0o600, 0o640, 0o755] as [mode_t])
    func replacedFileKeepsItsMode(mode: mode_t) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("y.npy").path
        try Data([0]).write(to: URL(fileURLWithPath: path))
        #expect(chmod(path, mode) == 0)
        try t.writeNPY(to: URL(fileURLWithPath: path))
        #expect(lstatMode(path).map { $0 & 0o7777 } == mode)
        #expect(try Tensor(npyContentsOf: URL(fileURLWithPath: path)) == t)

        let fresh = dir.appendingPathComponent("new.npy").path
        try t.writeNPY(to: URL(fileURLWithPath: fresh))
        let mask = umask(0o022)
        umask(mask)
        #expect(lstatMode(fresh).map { $0 & 0o7777 } == 0o666 & ~mask)
        #expect(try entries(dir) == ["new.npy", "y.npy"])
    }

    /// A read-only file (mode 0444: refused even as root) is not replaced.
    @Test func readOnlyFileIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("y.npy")
        try Data([7]).write(to: url)
        #expect(chmod(url.path, 0o444) == 0)
        #expect {
            try t.writeNPY(to: url)
        } throws: { error in
            guard case let .io(path, reason) = error as? NormKitError else { return false }
            return path == url.path && reason.contains("read-only")
        }
        #expect(try Data(contentsOf: url) == Data([7]))
        #expect(try entries(dir) == ["y.npy"])
    }

    /// `y.npy/` is an error whether y.npy is a file or missing; y.npy is untouched.
    @Test func trailingSlashIsAnError() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("y.npy")
        try Data([7]).write(to: file)
        for path in [file.path + "/", dir.appendingPathComponent("missing.npy").path + "/"] {
            #expect {
                try t.writeNPY(to: URL(fileURLWithPath: path))
            } throws: { error in
                guard case let .io(_, reason) = error as? NormKitError else { return false }
                return reason.contains("Not a directory")
            }
        }
        #expect(try Data(contentsOf: file) == Data([7]))
        #expect(try entries(dir) == ["y.npy"])
    }

    /// A writer killed (SIGINT, SIGTERM, SIGKILL) while it writes a 48 MB file again and
    /// again leaves the target either absent or complete, and no temporary file. The
    /// writer is a forked grandchild of an exit-test process, killed after 150-400 ms.
    @Test(arguments: [SIGINT, SIGTERM, SIGKILL])
    func killedWriterLeavesNoTemporaryFile(signal: Int32) async throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        await #expect(processExitsWith: .success) { [path = dir.path as String, signal = signal as Int32] in
            alarm(60)
            let big = Tensor.randomUniform([12 << 20], seed: 3)
            let target = URL(fileURLWithPath: path).appendingPathComponent("big.npy")
            for round in 0..<3 {
                let pid = fork()
                if pid == 0 {
                    ChildProcess.resetSignals()
                    while true { try? big.writeNPY(to: target) }
                }
                usleep(useconds_t(150_000 + 120_000 * round))
                kill(pid, signal)
                guard ChildProcess.wait(pid, seconds: 10) != nil else { exit(3) }
                let left = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? ["?"]
                guard left.allSatisfy({ $0 == "big.npy" }) else {
                    print("left behind after signal \(signal): \(left)")
                    exit(1)
                }
                if !left.isEmpty, (try? Tensor(npyContentsOf: target)) != big { exit(2) }
            }
        }
    }

    /// The size-0 regular files of /proc have content, and are read whole.
    #if os(Linux)
    @Test func procFilesAreReadWhole() throws {
        let data = try FileAccess.read(URL(fileURLWithPath: "/proc/self/status"), framing: .whole)
        #expect(data.count > 100)
        #expect(data.starts(with: Array("Name:".utf8)))
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty")
        try Data().write(to: empty)
        #expect(try FileAccess.read(empty, framing: .whole).isEmpty)
    }
    #endif
}
