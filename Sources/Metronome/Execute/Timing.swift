#if canImport(Glibc)
import Glibc
#endif

/// Reads `clock` in nanoseconds.
@inline(__always)
func nanoseconds(_ clock: clockid_t) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The monotonic clock in nanoseconds (CLOCK_MONOTONIC): immune to wall-clock changes.
public enum MonotonicClock {
    @inline(__always)
    public static func now() -> UInt64 { nanoseconds(CLOCK_MONOTONIC) }
}

/// The calling thread's CPU time in nanoseconds (CLOCK_THREAD_CPUTIME_ID): how long the thread
/// itself ran. Wall time minus this, over a stretch in which the thread never blocked, is time
/// something else held its core.
public enum ThreadCPUClock {
    @inline(__always)
    public static func now() -> UInt64 { nanoseconds(CLOCK_THREAD_CPUTIME_ID) }
}

extension MonotonicClock {
    /// Runs `body` at least `runs` times and, beyond that, until `seconds` have passed (at most
    /// `maximumRuns` times); returns each run's duration in milliseconds. The time floor gives
    /// short workloads enough samples for a stable median.
    public static func timeRepeatedly(atLeast runs: Int, seconds: Double, maximumRuns: Int = 100_000,
                                      _ body: () throws -> Void) rethrows -> [Double] {
        let end = now() + UInt64(max(0, seconds) * 1e9)
        var samples: [Double] = []
        samples.reserveCapacity(max(runs, 1024))
        while samples.count < runs || (now() < end && samples.count < maximumRuns) {
            let t0 = now()
            try body()
            samples.append(Double(now() - t0) / 1e6)
        }
        return samples
    }
}

/// Order statistics of a set of latency samples.
public struct LatencyStatistics: Equatable, Sendable, Codable {
    public var count: Int
    public var minimum: Double
    public var median: Double
    public var p90: Double
    public var p99: Double
    public var maximum: Double
    public var mean: Double

    /// Statistics of `samples` (any unit); percentiles use the nearest-rank definition.
    public init(_ samples: [Double]) throws {
        guard !samples.isEmpty else { throw MetronomeError.invalidArgument("no samples") }
        let s = samples.sorted()
        func rank(_ p: Double) -> Double { s[min(s.count - 1, max(0, Int((p * Double(s.count)).rounded(.up)) - 1))] }
        count = s.count
        minimum = s[0]
        maximum = s[s.count - 1]
        median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        p90 = rank(0.90)
        p99 = rank(0.99)
        mean = s.reduce(0, +) / Double(s.count)
    }
}
