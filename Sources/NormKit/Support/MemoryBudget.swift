// How many bytes this process may still allocate without being killed: one admission
// check for every large allocation `normkit` makes and for every stream NormKit reads
// into memory (docs/reliability.md, "Memory").
//
// Physical RAM is the wrong number: a process dies (SIGABRT, SIGILL in an allocator, or
// the OOM killer's SIGKILL) long before it, at whichever of three limits is lowest:
//
// - RLIMIT_AS (`ulimit -v`): address space, minus what the process already maps;
// - the cgroup's memory limit (v2 `memory.max` at every level of the process's cgroup,
//   or v1 `memory.limit_in_bytes`), minus what the cgroup already uses;
// - MemAvailable in /proc/meminfo: what the kernel can hand out without swapping.
//
// A request is admitted when it fits in that minimum less a headroom (an eighth of it,
// at least 128 MiB) for the allocator's slack, thread stacks and arenas, and the
// runtime. Where a number cannot be read (macOS has neither /proc nor cgroups), that
// limit is skipped; with none readable, physical memory is used.
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

package enum MemoryBudget {
    /// The limits in force now, in bytes (nil: not set or not readable).
    package struct Limits: Sendable, Equatable {
        package var addressSpace: Int?
        package var cgroup: Int?
        package var available: Int?
        package var physical: Int?

        /// The lowest of the limits, or `Int.max` when none is known.
        package var lowest: Int {
            [addressSpace, cgroup, available, physical].compactMap { $0 }.min() ?? Int.max
        }

        /// What a single request may take: `lowest` less the headroom.
        package var admissible: Int {
            let low = lowest
            guard low != Int.max else { return Int.max }
            return max(0, low - max(128 << 20, low / 8))
        }

        /// Which limit is lowest, for a message ("RLIMIT_AS", ...).
        package var lowestName: String {
            let low = lowest
            if addressSpace == low { return "the address-space limit (ulimit -v) less what is mapped" }
            if cgroup == low { return "the cgroup memory limit less what the cgroup uses" }
            if available == low { return "MemAvailable" }
            return "physical memory"
        }
    }

    /// The limits as the system reports them now.
    package static func current() -> Limits {
        var limits = Limits()
        var rl = rlimit()
        if getrlimit(RLIMIT_AS_VALUE, &rl) == 0, rl.rlim_cur < rlim_t(Int.max) {
            let used = procStatusBytes("VmSize:") ?? 0
            limits.addressSpace = max(0, Int(rl.rlim_cur) - used)
        }
        limits.cgroup = cgroupRemaining()
        limits.available = meminfoBytes("MemAvailable:")
        if limits.available == nil {
            let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
            if pages > 0, size > 0 {
                let (bytes, overflow) = pages.multipliedReportingOverflow(by: size)
                limits.physical = overflow ? nil : bytes
            }
        }
        return limits
    }

    /// Throws when `bytes` (nil: more than Int can count) is more than this process may
    /// allocate now; `what` names the request in the message.
    package static func admit(_ bytes: Int?, for what: String, limits: Limits = current()) throws(NormKitError) {
        let allowed = limits.admissible
        if let bytes, bytes <= allowed { return }
        let need = bytes.map { "\($0) bytes (\(gib($0)))" } ?? "more bytes than Int can count"
        throw .invalidArgument(
            name: what, expected: "at most \(allowed) bytes (\(gib(allowed))) to allocate: \(limits.lowestName) is \(limits.lowest) bytes (\(gib(limits.lowest))), less headroom",
            actual: need)
    }

    /// `bytes` as GiB with one decimal (TiB beyond 1024 GiB).
    package static func gib(_ bytes: Int) -> String {
        let g = Double(bytes) / Double(1 << 30)
        return g >= 1024 ? "\(Int(g / 1024)) TiB" : "\((g * 10).rounded() / 10) GiB"
    }

    #if os(Linux)
    private static let RLIMIT_AS_VALUE = Int32(RLIMIT_AS.rawValue)
    #else
    private static let RLIMIT_AS_VALUE = RLIMIT_AS
    #endif

    /// A small text file's contents (at most 64 KiB), or nil.
    static func smallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1 << 16)
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            filled += n
        }
        return String(decoding: bytes[0..<filled], as: UTF8.self)
    }

    /// A "Key:   N kB" line of a /proc file, in bytes.
    private static func kilobyteField(_ text: String?, _ key: String) -> Int? {
        guard let text else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let fields = line.dropFirst(key.count).split(separator: " ", omittingEmptySubsequences: true)
            guard let n = fields.first.flatMap({ Int($0) }) else { return nil }
            let (bytes, overflow) = n.multipliedReportingOverflow(by: 1024)
            return overflow ? Int.max : bytes
        }
        return nil
    }

    static func meminfoBytes(_ key: String) -> Int? { kilobyteField(smallFile("/proc/meminfo"), key) }
    static func procStatusBytes(_ key: String) -> Int? { kilobyteField(smallFile("/proc/self/status"), key) }

    /// The least room left under the memory limits of this process's cgroup and its
    /// ancestors (v2), or under the v1 memory controller's limit; nil when unlimited or
    /// not readable.
    static func cgroupRemaining() -> Int? {
        guard let membership = smallFile("/proc/self/cgroup") else { return nil }
        var lowest: Int?
        func consider(limit: String?, usage: String?) {
            guard let limitText = limit?.trimmed, let max = Int(limitText) else { return }  // "max": unlimited
            let used = usage.flatMap { Int($0.trimmed) } ?? 0
            let room = Swift.max(0, max - used)
            lowest = Swift.min(lowest ?? room, room)
        }
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                // v2: walk from the process's cgroup up to the root.
                var path = String(parts[2])
                while true {
                    let dir = "/sys/fs/cgroup" + (path == "/" ? "" : path)
                    consider(limit: smallFile(dir + "/memory.max"), usage: smallFile(dir + "/memory.current"))
                    guard path != "/", !path.isEmpty else { break }
                    if let slash = path.lastIndex(of: "/") {
                        path = slash == path.startIndex ? "/" : String(path[..<slash])
                    } else { break }
                }
            } else if parts[1].split(separator: ",").contains("memory") {
                // v1: the limit of the process's memory cgroup (mounted at .../memory).
                for dir in ["/sys/fs/cgroup/memory" + parts[2], "/sys/fs/cgroup/memory"] {
                    let limit = smallFile(dir + "/memory.limit_in_bytes")
                    // v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages).
                    if let l = limit.flatMap({ Int($0.trimmed) }), l < (1 << 60) {
                        consider(limit: limit, usage: smallFile(dir + "/memory.usage_in_bytes"))
                        break
                    }
                }
            }
        }
        return lowest
    }
}

private extension String {
    var trimmed: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
