import Foundation
import Metronome

/// Memory over one run: the budget and accounting, the swaps, and the process's measured
/// resident set. Times are ns from the run's common start.
public struct RunMemory: Sendable {
    public struct Transfer: Sendable, Equatable {
        public var task: Int
        public var start: Int64
        public var end: Int64
        public var bytes: Int
        public var prefetch: Bool
    }

    public var account: MemoryAccount
    public var model: SwapTimeModel?
    /// The resident set before anything of the task set was loaded, and its peak during the run.
    public var baselineRSS: Int
    public var peakRSS: Int
    /// Whether `peakRSS` is the kernel's high-water mark reset at the start (else the largest sample).
    public var peakIsExact: Bool
    /// The largest number of bytes accounted at once during the run.
    public var peakAccounted: Int
    public var rss: [(time: Int64, bytes: Int)]
    public var accounted: [(time: Int64, bytes: Int)]
    public var transfers: [Transfer]
    public var evictions: [(task: Int, time: Int64, bytes: Int)]
    public var swapIns: [Int]
    public var swapInMaxNs: [Int64]
    /// With `--enforce-cgroup`: the memory cgroup's limit and its peak charge over the run.
    public var cgroupLimit: Int? = nil
    public var cgroupPeak: Int? = nil

    public var peakRSSDelta: Int { peakRSS - baselineRSS }
}
