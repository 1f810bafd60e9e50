import Foundation
import CDNNL
#if canImport(Glibc)
import Glibc
#endif

/// CPU affinity of threads, through Linux's `sched_setaffinity`.
public enum Affinity {
    /// The cores this process may run on: the online CPUs, narrowed by the cgroup's cpuset
    /// when there is one. Deliberately not the calling thread's affinity mask, which a pinned
    /// executor narrows for the thread that ran it.
    public static func availableCores() -> [Int] {
        func read(_ path: String) -> [Int]? {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return trimmed.isEmpty ? nil : try? parse(trimmed)
        }
        var cores = read("/sys/devices/system/cpu/online") ?? threadCores()
        for path in ["/sys/fs/cgroup/cpuset.cpus.effective", "/sys/fs/cgroup/cpuset/cpuset.effective_cpus"] {
            if let allowed = read(path) { cores = cores.filter(Set(allowed).contains) }
        }
        return cores.isEmpty ? threadCores() : cores
    }

    /// The calling thread's affinity mask.
    static func threadCores() -> [Int] {
        var set = CPUSet()
        guard metronome_sched_getaffinity(0, UInt(MemoryLayout<CPUSet>.size), &set) == 0 else {
            return Array(0..<max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        }
        var cores: [Int] = []
        withUnsafeBytes(of: &set) { raw in
            for byte in 0..<raw.count { for bit in 0..<8 where raw[byte] & (1 << bit) != 0 { cores.append(byte * 8 + bit) } }
        }
        return cores
    }

    /// Checks that every core in `cores` exists and is available to this process.
    public static func validate(_ cores: [Int]) throws {
        guard !cores.isEmpty else { throw MetronomeError.invalidArgument("the core list is empty") }
        let available = Set(availableCores())
        for c in cores where !available.contains(c) {
            throw MetronomeError.invalidArgument(
                "core \(c) is not available on this machine (available: \(available.sorted().map(String.init).joined(separator: ",")))")
        }
    }

    /// Pins the calling thread to `cores`; returns false if the OS refused.
    @discardableResult
    public static func pinCurrentThread(to cores: [Int]) -> Bool {
        var set = CPUSet()
        withUnsafeMutableBytes(of: &set) { raw in
            for c in cores where c >= 0 && c / 8 < raw.count { raw[c / 8] |= UInt8(1 << (c % 8)) }
        }
        return metronome_sched_setaffinity(0, UInt(MemoryLayout<CPUSet>.size), &set) == 0
    }

    /// Parses a core list such as `0,2-3`.
    public static func parse(_ text: String) throws -> [Int] {
        var cores: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let lo = Int(bounds[0].trimmingCharacters(in: .whitespaces)),
                  let hi = Int(bounds[bounds.count - 1].trimmingCharacters(in: .whitespaces)), lo >= 0, lo <= hi else {
                throw MetronomeError.invalidArgument("invalid core list '\(text)': use numbers and ranges like 0,2-3")
            }
            cores.append(contentsOf: lo...hi)
        }
        return cores
    }
}


/// A kernel CPU mask for up to 1024 CPUs (the size of glibc's `cpu_set_t`).
struct CPUSet {
    var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}
