#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Metronome

/// The process's resident set during a run: sampled every `interval` from `/proc/self/statm`
/// (for memory-over-time plots), and its exact peak from the kernel's high-water mark
/// (`VmHWM`, reset at start through `/proc/self/clear_refs` where the kernel allows it), so a
/// peak between two samples is not missed.
final class ResidentSetSampler: @unchecked Sendable {
    private let monitor = Monitor()
    private var samples: [(UInt64, Int)] = []
    private var stopping = false
    private var thread: pthread_t?
    private let interval: UInt64
    private let capacity: Int
    /// Whether the high-water mark was reset at start (so it is the run's own peak).
    private(set) var peakReset = false

    init(interval: UInt64 = 2_000_000, expectedDuration: Int64) {
        self.interval = interval
        capacity = min(max(Int(expectedDuration / Int64(interval)) + 1000, 1000), 1 << 20)
        samples.reserveCapacity(capacity)
    }

    /// Resident bytes now (0 when `/proc` cannot be read).
    static func residentBytes() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 127) }
        guard n > 0 else { return 0 }
        let fields = buffer.prefix(n).split(separator: UInt8(ascii: " "))
        guard fields.count >= 2, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * WeightRegion.pageSize
    }

    /// The kernel's peak resident set of the process (`VmHWM`), bytes.
    static func peakResidentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.dropFirst(6).split(separator: " ").first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }

    func start() {
        // "5" resets the peak resident set (Linux ≥ 4.0).
        if let f = fopen("/proc/self/clear_refs", "w") {
            peakReset = fputs("5", f) >= 0
            peakReset = (fclose(f) == 0) && peakReset
        }
        thread = RealtimeThread.spawn { [unowned self] in
            // Above the jobs, so that samples keep coming while every core computes.
            _ = RealtimeThread.makeFIFO(priority: 58)
            var next = MonotonicClock.now()
            while true {
                let t = MonotonicClock.now()
                let rss = Self.residentBytes()
                let done: Bool = self.monitor.withLock {
                    if self.samples.count < self.capacity { self.samples.append((t, rss)) }
                    return self.stopping
                }
                if done { break }
                next += self.interval
                RealtimeThread.sleep(untilMonotonic: max(next, MonotonicClock.now()))
            }
        }
    }

    /// Stops sampling; returns the samples and the peak (the larger of the high-water mark,
    /// when it was reset, and the largest sample).
    func stop() -> (samples: [(UInt64, Int)], peak: Int) {
        monitor.withLock { stopping = true }
        if let thread { RealtimeThread.join(thread) }
        let s = monitor.withLock { samples }
        let sampled = s.map(\.1).max() ?? 0
        return (s, peakReset ? max(sampled, Self.peakResidentBytes()) : sampled)
    }
}

/// glibc's `malloc_trim` and `mallopt` (declared in `malloc.h`, which Glibc's Swift module
/// does not export).
@_silgen_name("malloc_trim") private func glibcMallocTrim(_ pad: Int) -> Int32
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

enum MallocControl {
    /// Returns freed heap memory to the system.
    static func trim() { _ = glibcMallocTrim(0) }

    /// Fixes the size above which `malloc` maps memory of its own (glibc otherwise raises it
    /// after every large free, so that freed model graphs would stay in the heap, resident).
    static func fixMmapThreshold(_ bytes: Int32 = 1 << 20) { _ = glibcMallopt(-3, bytes) }
}
