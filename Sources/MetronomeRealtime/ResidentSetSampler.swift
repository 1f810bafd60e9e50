#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Metronome

/// The process's resident set during a run: sampled every `interval` from `/proc/self/status`
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

    func start() {
        peakReset = ProcessMemory.resetPeak()
        thread = RealtimeThread.spawn { [unowned self] in
            // Above the jobs, so that samples keep coming while every core computes.
            _ = RealtimeThread.makeFIFO(priority: 58)
            var next = MonotonicClock.now()
            while true {
                let t = MonotonicClock.now()
                let rss = ProcessMemory.residentBytes()
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
        return (s, peakReset ? max(sampled, ProcessMemory.peakResidentBytes()) : sampled)
    }
}
