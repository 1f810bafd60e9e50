import Foundation

/// A stretch of a run in which jobs of several tasks ran slower than their profiled worst
/// case: interference from outside the task set (other processes, host slowdowns, thermal
/// limits), which a measured WCET cannot foresee.
public struct InterferenceEpisode: Codable, Sendable, Equatable {
    /// From the start of the first slow job to the end of the last one, ms from the run's start.
    public var startMs: Double
    public var endMs: Double
    /// Cores the slow jobs' tasks run on.
    public var cores: [Int]
    public var tasks: [String]
    /// Slow jobs in the episode.
    public var jobs: Int
    /// The largest execution time over the task's profiled median among the episode's jobs.
    public var worstInflation: Double
    /// The interference probe's largest kernel time over its calibrated median on the
    /// episode's cores within the episode (nil without probe samples there): well above 1
    /// means the platform itself slowed down, not just the models.
    public var probeInflation: Double?

    enum CodingKeys: String, CodingKey {
        case cores, tasks, jobs
        case startMs = "start_ms", endMs = "end_ms", worstInflation = "worst_inflation", probeInflation = "probe_inflation"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(startMs, forKey: .startMs)
        try c.encode(endMs, forKey: .endMs)
        try c.encode(cores, forKey: .cores)
        try c.encode(tasks, forKey: .tasks)
        try c.encode(jobs, forKey: .jobs)
        try c.encode(worstInflation, forKey: .worstInflation)
        try c.encode(probeInflation, forKey: .probeInflation)
    }
}

/// What the interference probe saw over a run (``InterferenceProbe``).
public struct ProbeSummary: Codable, Sendable, Equatable {
    /// The fixed kernel's calibrated median, µs, and how often each core ran it, ms.
    public var kernelUs: Double
    public var periodMs: Double
    /// Share of each core the probe used.
    public var cost: Double
    public var samples: Int
    /// Kernel time over its median: 99th percentile and maximum over the run.
    public var p99Inflation: Double
    public var maxInflation: Double
    /// Wake-up lateness of the probe threads, ms: 99th percentile and maximum.
    public var p99LatenessMs: Double
    public var maxLatenessMs: Double

    enum CodingKeys: String, CodingKey {
        case cost, samples
        case kernelUs = "kernel_us", periodMs = "period_ms", p99Inflation = "p99_inflation", maxInflation = "max_inflation"
        case p99LatenessMs = "p99_lateness_ms", maxLatenessMs = "max_lateness_ms"
    }

    public init?(_ result: RunResult) {
        guard !result.probe.isEmpty, result.probeBaseline > 0 else { return nil }
        let ratios = result.probe.map { Double($0.duration) / Double(result.probeBaseline) }.sorted()
        kernelUs = Double(result.probeBaseline) / 1e3
        periodMs = Double(InterferenceProbe.period) / 1e6
        cost = Double(result.probeBaseline) / Double(InterferenceProbe.period)
        samples = ratios.count
        p99Inflation = ratios[min(ratios.count - 1, Int(Double(ratios.count) * 0.99))]
        maxInflation = ratios.last ?? 1
        let late = result.probe.map { Double($0.lateness) / 1e6 }.sorted()
        p99LatenessMs = late[min(late.count - 1, Int(Double(late.count) * 0.99))]
        maxLatenessMs = late.last ?? 0
    }
}

/// Finds interference episodes in a run by comparing every job's execution time with the
/// task's timing profile (the runs measured before the set ran).
///
/// A job is *slow* when its execution time exceeds its task's WCET as the analysis took it
/// (the longest profiled run × margin, or the declared or probabilistic WCET), or, without an
/// analysis, the longest profiled run: it ran slower than the task was ever seen or assumed
/// to run. (A task with widths is held to its widest width's WCET.) Slow jobs
/// whose spans overlap, or lie within `gap` of each other, form a cluster; a cluster with
/// slow jobs of at least two tasks is an episode (one slow task alone is the model's own
/// variance, unless the interference probe saw its core slow down by ``probeThreshold`` or
/// more, or woke ``latenessThreshold`` late, at the same time: a platform slowdown too). A missed deadline is
/// *explained* when the job's window [release, release + deadline] overlaps an episode.
public enum InterferenceDetector {
    public static let defaultGap: Int64 = 20_000_000
    public static let probeThreshold = 1.5
    /// A probe wake-up this late (ns) also marks its core as taken by something outside the set.
    public static let latenessThreshold: Int64 = 1_000_000

    public struct Report: Sendable, Equatable {
        public var episodes: [InterferenceEpisode]
        /// Misses (missed deadlines and skipped releases) whose window overlaps an episode.
        public var explainedMisses: Int
        public var misses: Int
    }

    /// `wcets[i]`: task i's WCET in the analysis (nil: the longest profiled run).
    public static func detect(_ result: RunResult, wcets: [Int64]? = nil, gap: Int64 = defaultGap) -> Report {
        let set = result.taskSet
        struct Slow { var task: Int; var start: Int64; var end: Int64; var inflation: Double }
        var slow: [Slow] = []
        for (i, records) in result.records.enumerated() {
            let profile = result.timing[i].jobSamples.sorted()
            guard let longest = profile.last, longest > 0 else { continue }
            let worst = wcets?[i] ?? Int64(longest)
            let median = Double(profile[profile.count / 2])
            for r in records {
                guard let s = r.start, let e = r.end, r.execution > worst else { continue }
                slow.append(Slow(task: i, start: s, end: e, inflation: Double(r.execution) / max(median, 1)))
            }
        }
        slow.sort { $0.start < $1.start }
        var episodes: [InterferenceEpisode] = []
        var windows: [(Int64, Int64)] = []
        var k = 0
        while k < slow.count {
            var cluster = [slow[k]]
            var end = slow[k].end
            k += 1
            while k < slow.count && slow[k].start <= end + gap {
                cluster.append(slow[k])
                end = max(end, slow[k].end)
                k += 1
            }
            let tasks = Set(cluster.map(\.task))
            let start = cluster[0].start
            let cores = Set(tasks.flatMap { set.cores(of: $0) })
            let inside = result.probe.filter { $0.time >= start && $0.time <= end && cores.contains($0.core) }
            let probe = result.probeBaseline > 0 ? inside.map { Double($0.duration) / Double(result.probeBaseline) }.max() : nil
            let platform = (probe ?? 0) >= probeThreshold || inside.contains { $0.lateness >= latenessThreshold }
            guard tasks.count >= 2 || platform else { continue }
            windows.append((start, end))
            episodes.append(InterferenceEpisode(
                startMs: Double(start) / 1e6, endMs: Double(end) / 1e6,
                cores: cores.sorted(), tasks: tasks.sorted().map { set.tasks[$0].name },
                jobs: cluster.count, worstInflation: cluster.map(\.inflation).max() ?? 1, probeInflation: probe))
        }
        var misses = 0, explained = 0
        for (i, records) in result.records.enumerated() {
            for r in records where !r.deadlineMet {
                misses += 1
                let window = (r.release, r.release + set.tasks[i].deadline)
                if windows.contains(where: { $0.0 <= window.1 && window.0 <= $0.1 }) { explained += 1 }
            }
        }
        return Report(episodes: episodes, explainedMisses: explained, misses: misses)
    }
}
