import Foundation

/// A stretch of a run in which jobs of several tasks ran slower than their profiled worst
/// case, or a job's worker woke long after its release while its cores ran nothing of the
/// set: interference from outside the task set (other processes, host slowdowns and stolen
/// time, thermal limits), which a measured WCET cannot foresee.
public struct InterferenceEpisode: Codable, Sendable, Equatable {
    /// From the start of the first slow job to the end of the last one, ms from the run's start.
    public var startMs: Double
    public var endMs: Double
    /// Cores the slow jobs' tasks run on.
    public var cores: [Int]
    public var tasks: [String]
    /// Slow or stalled jobs in the episode.
    public var jobs: Int
    /// The longest wake-up stall in the episode, ms (nil without one): time after a job's
    /// release in which its worker had not woken although none of its task's cores ran
    /// anything of the set. The analysis assumes a released job runs as soon as its cores
    /// are free; a stall means something outside the set held them.
    public var stallMs: Double?
    /// The longest time a one-thread job's worker was kept off its granted core in the middle
    /// of the job beyond the task's usual share, ms (nil without one): the job's execution
    /// minus its thread's CPU time, under a managed policy, where no other job of the set
    /// shares the core meanwhile.
    public var displacedMs: Double?
    /// The largest execution time over the task's profiled median among the episode's jobs.
    public var worstInflation: Double
    /// The interference probe's largest kernel time over its calibrated median on the
    /// episode's cores within the episode (nil without probe samples there): well above 1
    /// means the platform itself slowed down, not just the models.
    public var probeInflation: Double?

    enum CodingKeys: String, CodingKey {
        case cores, tasks, jobs
        case startMs = "start_ms", endMs = "end_ms", worstInflation = "worst_inflation", probeInflation = "probe_inflation"
        case stallMs = "stall_ms", displacedMs = "displaced_ms"
    }

    public init(startMs: Double, endMs: Double, cores: [Int], tasks: [String], jobs: Int, worstInflation: Double,
                probeInflation: Double?, stallMs: Double? = nil, displacedMs: Double? = nil) {
        self.startMs = startMs
        self.endMs = endMs
        self.cores = cores
        self.tasks = tasks
        self.jobs = jobs
        self.worstInflation = worstInflation
        self.probeInflation = probeInflation
        self.stallMs = stallMs
        self.displacedMs = displacedMs
    }

    /// Reads summaries written before stalls were detected, too.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        startMs = try c.decode(Double.self, forKey: .startMs)
        endMs = try c.decode(Double.self, forKey: .endMs)
        cores = try c.decode([Int].self, forKey: .cores)
        tasks = try c.decode([String].self, forKey: .tasks)
        jobs = try c.decode(Int.self, forKey: .jobs)
        worstInflation = try c.decode(Double.self, forKey: .worstInflation)
        probeInflation = try c.decodeIfPresent(Double.self, forKey: .probeInflation)
        stallMs = try c.decodeIfPresent(Double.self, forKey: .stallMs)
        displacedMs = try c.decodeIfPresent(Double.self, forKey: .displacedMs)
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
        try c.encode(stallMs, forKey: .stallMs)
        try c.encode(displacedMs, forKey: .displacedMs)
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
/// task's timing profile (the runs measured before the set ran), and every worker's wake-up
/// with what the set's jobs did on its cores.
///
/// A job is *slow* when its execution time exceeds its task's WCET as the analysis took it
/// (the longest profiled run × margin, or the declared or probabilistic WCET), or, without an
/// analysis, the longest profiled run: it ran slower than the task was ever seen or assumed
/// to run. (A task with widths is held to its widest width's WCET.)
///
/// A job is *stalled* when, between its release and its start (its worker's wake-up, for a
/// job that waited for its weights), there is a stretch of ``latenessThreshold`` or more in
/// which none of its task's cores ran any job of the set (no execution or lock-wait span
/// touched them). The worker sleeps on a timer until the release and wakes on its own (at
/// SCHED_FIFO 60, above every job), and the dispatcher grants free cores at once (checked
/// against the simulator by DispatcherAgreementTests), so nothing in the set holds it back
/// while its cores are free: only something outside the set (a higher-priority thread, the
/// hypervisor's stolen time) can. The analysis assumes the opposite — a released
/// job's thread runs once its cores are free — so a stall breaks its premise just as a slow
/// job does. A stall's stretch runs from the start of that free-but-unused time to the job's
/// end, the response it lengthened. (Spans after a task's span storage filled up are not
/// known, so no stall is looked for on its cores after that point.)
///
/// A one-thread job is *displaced* when, under a managed policy, its execution exceeds its
/// worker thread's CPU time over the job by ``latenessThreshold`` or more beyond the task's
/// usual share (the median of execution minus CPU time over execution among its jobs, about
/// 1% for 100 ms jobs: the run's own memory sampler, probe and bookkeeping threads): the
/// dispatcher gave the job its core alone and the worker did not block within its execution
/// (waits for the dispatcher or the lock are not execution), so only something outside the
/// set (a higher-priority thread, the hypervisor, page reclaim) can have held it off the core
/// that long.
///
/// Slow, stalled and displaced jobs whose stretches overlap, or lie within `gap` of each other,
/// form a cluster; a cluster is an episode when it has slow jobs of at least two tasks, a
/// stall or a displaced job, or
/// the interference probe saw its cores slow down by ``probeThreshold`` or more, or wake
/// ``latenessThreshold`` late, at the same time (one slow task alone is otherwise the model's
/// own variance). A missed deadline is *explained* when the job's window
/// [release, release + deadline] overlaps an episode.
public enum InterferenceDetector {
    public static let defaultGap: Int64 = 20_000_000
    public static let probeThreshold = 1.5
    /// A probe wake-up this late (ns) also marks its core as taken by something outside the
    /// set, and a worker's wake-up stall this long marks a stall.
    public static let latenessThreshold: Int64 = 1_000_000

    public struct Report: Sendable, Equatable {
        public var episodes: [InterferenceEpisode]
        /// Misses (missed deadlines and skipped releases) whose window overlaps an episode.
        public var explainedMisses: Int
        public var misses: Int
        /// The episodes' stretches, ns from the run's start.
        var windows: [ClosedRange<Int64>] = []

        /// Whether [from, to] (ns from the run's start) overlaps an episode.
        public func overlapsEpisode(from: Int64, to: Int64) -> Bool {
            windows.contains { $0.lowerBound <= to && from <= $0.upperBound }
        }
    }

    /// One stalled job: the free-but-unused stretch began at `from` and lasted `length`; the
    /// job ended at `end` (its wake-up when it has no end) after computing for `execution`.
    public struct Stall: Sendable, Equatable {
        public var task: Int
        public var job: Int
        public var from: Int64
        public var length: Int64
        public var end: Int64
        public var execution: Int64

        public init(task: Int, job: Int, from: Int64, length: Int64, end: Int64, execution: Int64) {
            self.task = task
            self.job = job
            self.from = from
            self.length = length
            self.end = end
            self.execution = execution
        }
    }

    /// Stalled jobs (see the type's documentation), in record order.
    public static func stalls(_ result: RunResult, threshold: Int64 = latenessThreshold) -> [Stall] {
        let set = result.taskSet
        let spans = result.spans.joined()
        var out: [Stall] = []
        for (i, records) in result.records.enumerated() {
            let cores = Set(set.cores(of: i))
            // After the recorder of a task on these cores filled up, its later spans are
            // missing: look no further.
            let known = result.spans.indices
                .filter { result.spansTruncated[$0] && !cores.isDisjoint(with: set.cores(of: $0)) }
                .map { result.spans[$0].map(\.end).max() ?? 0 }.min() ?? .max
            let busy = mergedIntervals(spans.filter { !cores.isDisjoint(with: $0.cores) }.map { ($0.start, $0.end) })
            for r in records {
                guard let wake = r.wakeup else { continue }
                // Up to the start when nothing else (its weights) could hold the job back.
                let until = r.swapWait == 0 ? max(r.start ?? wake, wake) : wake
                guard until - r.release >= threshold, until <= known else { continue }
                if let gap = longestGap(in: (r.release, until), outside: busy), gap.length >= threshold {
                    out.append(Stall(task: i, job: r.job, from: gap.from, length: gap.length, end: max(r.end ?? until, until),
                                     execution: r.execution))
                }
            }
        }
        return out
    }

    /// The union of intervals, sorted and disjoint.
    public static func mergedIntervals(_ intervals: [(Int64, Int64)]) -> [(Int64, Int64)] {
        var out: [(Int64, Int64)] = []
        for (a, b) in intervals.sorted(by: { $0.0 < $1.0 }) where b > a {
            if let last = out.last, a <= last.1 { out[out.count - 1].1 = max(last.1, b) } else { out.append((a, b)) }
        }
        return out
    }

    /// The longest part of `window` that no interval of `union` (sorted, disjoint) covers.
    public static func longestGap(in window: (Int64, Int64), outside union: [(Int64, Int64)]) -> (from: Int64, length: Int64)? {
        var best: (from: Int64, length: Int64)?
        var cursor = window.0
        for (a, b) in union where b > window.0 {
            if a >= window.1 { break }
            if a > cursor, a - cursor > (best?.length ?? 0) { best = (cursor, a - cursor) }
            cursor = max(cursor, b)
            if cursor >= window.1 { break }
        }
        if cursor < window.1, window.1 - cursor > (best?.length ?? 0) { best = (cursor, window.1 - cursor) }
        return best
    }

    /// `wcets[i]`: task i's WCET in the analysis (nil: the longest profiled run).
    public static func detect(_ result: RunResult, wcets: [Int64]? = nil, gap: Int64 = defaultGap) -> Report {
        let set = result.taskSet
        struct Flagged {
            var task: Int, start: Int64, end: Int64, inflation: Double, slow: Bool
            var stall: Int64? = nil, displaced: Int64? = nil
        }
        var flagged: [Flagged] = []
        var medians: [Double] = []
        for (i, records) in result.records.enumerated() {
            let profile = result.timing[i].jobSamples.sorted()
            medians.append(profile.isEmpty ? 0 : Double(profile[profile.count / 2]))
            guard let longest = profile.last, longest > 0 else { continue }
            let worst = wcets?[i] ?? Int64(longest)
            let shares = records.compactMap { r in r.cpu.map { Double(r.execution - $0) / Double(max(r.execution, 1)) } }.sorted()
            let usual = shares.isEmpty ? 0 : max(0, shares[shares.count / 2])
            for r in records {
                guard let s = r.start, let e = r.end else { continue }
                let displaced = set.policy == .unmanaged ? nil
                    : r.cpu.map { r.execution - $0 - Int64(usual * Double(r.execution)) }
                let slow = r.execution > worst
                guard slow || (displaced ?? 0) >= latenessThreshold else { continue }
                flagged.append(Flagged(task: i, start: s, end: e, inflation: Double(r.execution) / max(medians[i], 1), slow: slow,
                                       displaced: (displaced ?? 0) >= latenessThreshold ? displaced : nil))
            }
        }
        for stall in stalls(result) {
            flagged.append(Flagged(task: stall.task, start: stall.from, end: stall.end,
                                   inflation: Double(stall.execution) / max(medians[stall.task], 1), slow: false, stall: stall.length))
        }
        flagged.sort { $0.start < $1.start }
        var episodes: [InterferenceEpisode] = []
        var windows: [ClosedRange<Int64>] = []
        var k = 0
        while k < flagged.count {
            var cluster = [flagged[k]]
            var end = flagged[k].end
            k += 1
            while k < flagged.count && flagged[k].start <= end + gap {
                cluster.append(flagged[k])
                end = max(end, flagged[k].end)
                k += 1
            }
            let slowTasks = Set(cluster.filter(\.slow).map(\.task))
            let tasks = Set(cluster.map(\.task))
            let start = cluster[0].start
            let cores = Set(tasks.flatMap { set.cores(of: $0) })
            let inside = result.probe.filter { $0.time >= start && $0.time <= end && cores.contains($0.core) }
            let probe = result.probeBaseline > 0 ? inside.map { Double($0.duration) / Double(result.probeBaseline) }.max() : nil
            let stall = cluster.compactMap(\.stall).max()
            let displaced = cluster.compactMap(\.displaced).max()
            let platform = (probe ?? 0) >= probeThreshold || inside.contains { $0.lateness >= latenessThreshold }
                || stall != nil || displaced != nil
            guard slowTasks.count >= 2 || platform else { continue }
            windows.append(start...end)
            episodes.append(InterferenceEpisode(
                startMs: Double(start) / 1e6, endMs: Double(end) / 1e6,
                cores: cores.sorted(), tasks: tasks.sorted().map { set.tasks[$0].name },
                jobs: cluster.count, worstInflation: cluster.map(\.inflation).max() ?? 1, probeInflation: probe,
                stallMs: stall.map { Double($0) / 1e6 }, displacedMs: displaced.map { Double($0) / 1e6 }))
        }
        var misses = 0, explained = 0
        var report = Report(episodes: episodes, explainedMisses: 0, misses: 0, windows: windows)
        for (i, records) in result.records.enumerated() {
            for r in records where !r.deadlineMet {
                misses += 1
                if report.overlapsEpisode(from: r.release, to: r.release + set.tasks[i].deadline) { explained += 1 }
            }
        }
        report.explainedMisses = explained
        report.misses = misses
        return report
    }
}
