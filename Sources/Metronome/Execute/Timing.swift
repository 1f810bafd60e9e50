#if canImport(Glibc)
import Glibc
#endif

/// The monotonic clock in nanoseconds (CLOCK_MONOTONIC): immune to wall-clock changes.
public enum MonotonicClock {
    @inline(__always)
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
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
