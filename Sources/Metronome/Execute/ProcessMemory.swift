import CDNNL
import Foundation

/// This process's memory as the kernel counts it (`/proc/self/status`), and the few glibc
/// malloc controls that make those counts mean what was allocated: shared by the profile
/// worker (one configuration per process) and the real-time runner (a set's run).
public enum ProcessMemory {
    /// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`, `RssAnon`, `VmSize`); 0 when absent.
    public static func status(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 0
            return kib * 1024
        }
        return 0
    }

    /// The resident set (VmRSS), read from `/proc/self/statm` without allocating: cheap enough
    /// for the run's 2 ms sampler, which runs above the jobs.
    public static func residentBytes() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &buffer) { raw -> Int in
            let n = read(fd, raw.baseAddress, raw.count - 1)
            guard n > 0 else { return 0 }
            // "size resident shared …": the second field, in pages.
            var field = 0, value = 0
            for i in 0..<n {
                let c = raw[i]
                if c == UInt8(ascii: " ") { field += 1; if field > 1 { break }; continue }
                if field == 1, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { value = value * 10 + Int(c - UInt8(ascii: "0")) }
            }
            return value * Int(sysconf(Int32(_SC_PAGESIZE)))
        }
    }
    public static func peakResidentBytes() -> Int { status("VmHWM") }

    /// Resets VmHWM to the current resident set (Linux's `clear_refs` value 5), so the peak
    /// measured afterwards is that of what follows. False where the kernel does not allow it.
    @discardableResult
    public static func resetPeak() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("5".utf8)) } catch { return false }
        return true
    }

    /// Hands memory freed by the compiler back to the kernel, so it does not count as resident.
    public static func returnFreedMemory() { _ = metronome_malloc_trim(0) }

    /// Fixes the size above which `malloc` maps memory of its own (`M_MMAP_THRESHOLD`; glibc
    /// otherwise raises it after every large free, so that freed model graphs would stay in
    /// the heap, resident).
    public static func fixMmapThreshold(_ bytes: Int32 = 1 << 20) { _ = metronome_mallopt(-3, bytes) }

    /// One malloc arena (`M_ARENA_MAX`), so that threads do not reserve address space they
    /// never touch.
    public static func singleArena() { _ = metronome_mallopt(-8, 1) }
}
