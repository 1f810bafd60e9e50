import Foundation
import Histogram
import Metronome

/// Per-task statistics of a run, in the shape of `summary.json`.
public struct TaskSummary: Codable, Sendable, Equatable {
    public struct Response: Codable, Sendable, Equatable {
        public var min: Double
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double
    }

    public var name: String
    public var model: String
    public var periodMs: Double
    public var deadlineMs: Double
    /// Releases, including skipped ones.
    public var jobs: Int
    /// Releases whose job missed its deadline or was skipped.
    public var misses: Int
    public var missRatio: Double
    public var skipped: Int
    /// Completed jobs whose output did not match the reference.
    public var outputErrors: Int
    /// Response time (end − release) of completed jobs, ms; nil when no job completed.
    public var responseMs: Response?
    /// 99th percentile of (wake-up − release) over releases the task slept for, ms.
    public var releaseJitterP99Ms: Double
    /// Execution time over the run's elapsed time (1.0 = one core busy the whole run).
    public var utilization: Double
    public var preemptions: Int
    public var lockWaitMaxMs: Double
    /// Execution time measured alone before the run (max of the timing runs), ms.
    public var isolatedMaxMs: Double
    /// The analytic response-time bound, ms (nil when the analysis gives none).
    public var boundMs: Double?
    /// Observed maximum response over the bound (> 1: the bound was exceeded in this run);
    /// nil when there is no bound or no completed job. Shows how much a measured or
    /// probabilistic WCET under-estimated the run's interference.
    public var observedBoundRatio: Double?
    public var schedulable: Bool?
    /// Tasks with `widths`: the mean width of its completed jobs (nil otherwise).
    public var meanWidth: Double? = nil
    /// Jobs ended by `on_overrun: abort` (counted in misses), and jobs that ran past their budget.
    public var aborted: Int? = nil
    public var overruns: Int? = nil
    /// Swap-ins of the task's weights during the run and the longest one (0 when it never swapped).
    public var swapIns: Int? = nil
    public var swapInMsMax: Double? = nil
    /// The longest time a job waited for its weights, ms.
    public var swapWaitMsMax: Double? = nil
    /// Tasks with `data`: images its completed jobs classified, and the top-1 / top-5 accuracy.
    public var accuracy: Accuracy? = nil

    public struct Accuracy: Codable, Sendable, Equatable {
        public var images: Int
        public var top1: Double
        public var top5: Double
    }

    enum CodingKeys: String, CodingKey {
        case name, model, jobs, misses, skipped, utilization, preemptions, schedulable
        case swapIns = "swap_ins", swapInMsMax = "swap_in_ms_max", swapWaitMsMax = "swap_wait_ms_max"
        case periodMs = "period_ms", deadlineMs = "deadline_ms", missRatio = "miss_ratio"
        case outputErrors = "output_errors", responseMs = "response_ms"
        case releaseJitterP99Ms = "release_jitter_p99_ms", lockWaitMaxMs = "lock_wait_max_ms"
        case isolatedMaxMs = "isolated_max_ms", boundMs = "bound_ms", observedBoundRatio = "observed_bound_ratio"
        case meanWidth = "mean_width", aborted, overruns, accuracy
    }

    /// Every key is always present; a missing value is written as `null` (the synthesized
    /// encoder would leave the key out), so readers of summary.json see one fixed schema.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(model, forKey: .model)
        try c.encode(periodMs, forKey: .periodMs)
        try c.encode(deadlineMs, forKey: .deadlineMs)
        try c.encode(jobs, forKey: .jobs)
        try c.encode(misses, forKey: .misses)
        try c.encode(missRatio, forKey: .missRatio)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(outputErrors, forKey: .outputErrors)
        try c.encode(responseMs, forKey: .responseMs)
        try c.encode(releaseJitterP99Ms, forKey: .releaseJitterP99Ms)
        try c.encode(utilization, forKey: .utilization)
        try c.encode(preemptions, forKey: .preemptions)
        try c.encode(lockWaitMaxMs, forKey: .lockWaitMaxMs)
        try c.encode(isolatedMaxMs, forKey: .isolatedMaxMs)
        try c.encode(boundMs, forKey: .boundMs)
        try c.encode(observedBoundRatio, forKey: .observedBoundRatio)
        try c.encode(schedulable, forKey: .schedulable)
        try c.encode(meanWidth, forKey: .meanWidth)
        try c.encode(aborted, forKey: .aborted)
        try c.encode(overruns, forKey: .overruns)
        try c.encode(swapIns, forKey: .swapIns)
        try c.encode(swapInMsMax, forKey: .swapInMsMax)
        try c.encode(swapWaitMsMax, forKey: .swapWaitMsMax)
        try c.encode(accuracy, forKey: .accuracy)
    }
}

/// `summary.json`'s `memory`: the budget against what was accounted and what the process
/// really held.
public struct MemorySummary: Codable, Sendable, Equatable {
    public var budgetBytes: Int?
    /// Bytes resident for the whole run by the accounting (arenas, scratchpads, I/O, unswapped weights).
    public var alwaysResidentBytes: Int
    /// The most bytes accounted at once (never above the budget).
    public var peakAccountedBytes: Int
    /// The process's peak resident set during the run above its resident set before the
    /// task set's models were loaded (or, without a budget, at the run's start).
    public var peakRSSDeltaBytes: Int
    public var baselineRSSBytes: Int
    public var peakRSSBytes: Int
    /// Whether the peak is the kernel's high-water mark (exact) or the largest 2 ms sample.
    public var peakRSSExact: Bool
    /// The peak of the memory cgroup the run was confined to (`--enforce-cgroup`).
    public var cgroupPeakBytes: Int?
    public var cgroupLimitBytes: Int?
    public var swapIns: Int
    public var swapModel: SwapTimeModel?

    enum CodingKeys: String, CodingKey {
        case budgetBytes = "budget_bytes", alwaysResidentBytes = "always_resident_bytes"
        case peakAccountedBytes = "peak_accounted_bytes", peakRSSDeltaBytes = "peak_rss_delta_bytes"
        case baselineRSSBytes = "baseline_rss_bytes", peakRSSBytes = "peak_rss_bytes", peakRSSExact = "peak_rss_exact"
        case cgroupPeakBytes = "cgroup_peak_bytes", cgroupLimitBytes = "cgroup_limit_bytes"
        case swapIns = "swap_ins", swapModel = "swap_model"
    }

    public init(_ m: RunMemory) {
        budgetBytes = m.account.budget
        alwaysResidentBytes = m.account.alwaysResident
        peakAccountedBytes = m.peakAccounted
        peakRSSDeltaBytes = m.peakRSSDelta
        baselineRSSBytes = m.baselineRSS
        peakRSSBytes = m.peakRSS
        peakRSSExact = m.peakIsExact
        swapIns = m.swapIns.reduce(0, +)
        swapModel = m.model
        cgroupPeakBytes = m.cgroupPeak
        cgroupLimitBytes = m.cgroupLimit
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(budgetBytes, forKey: .budgetBytes)
        try c.encode(alwaysResidentBytes, forKey: .alwaysResidentBytes)
        try c.encode(peakAccountedBytes, forKey: .peakAccountedBytes)
        try c.encode(peakRSSDeltaBytes, forKey: .peakRSSDeltaBytes)
        try c.encode(baselineRSSBytes, forKey: .baselineRSSBytes)
        try c.encode(peakRSSBytes, forKey: .peakRSSBytes)
        try c.encode(peakRSSExact, forKey: .peakRSSExact)
        try c.encode(cgroupPeakBytes, forKey: .cgroupPeakBytes)
        try c.encode(cgroupLimitBytes, forKey: .cgroupLimitBytes)
        try c.encode(swapIns, forKey: .swapIns)
        try c.encode(swapModel, forKey: .swapModel)
    }
}

public struct RunSummary: Codable, Sendable, Equatable {
    public var name: String
    public var policy: String
    public var preemption: String
    public var lockK: Int?
    public var elapsedS: Double
    public var realtimePriority: Bool
    public var analysisMethod: String
    public var tasks: [TaskSummary]
    /// Stretches in which jobs of several tasks ran slower than their WCET (see
    /// ``InterferenceDetector``), and how many misses fall inside them.
    public var interference: [InterferenceEpisode]
    public var missesExplainedByInterference: Int
    /// Jobs of tasks the analysis called schedulable that missed their deadline or responded
    /// later than their bound, and how many of them happened while the analysis's premise was
    /// broken: within the job's window ([release, end], or [release, release + deadline] for a
    /// skipped job) a job of a task sharing its cores ran longer than its analysed WCET, or one
    /// of its layers longer than the longest layer analysed (its non-preemptive region), or an
    /// interference episode overlaps it (a worker woke late on cores the set left free, or
    /// several tasks ran slow at once). The analysis vouches only for jobs within their WCETs
    /// on a platform that runs a released job once its cores are free; a violation with that
    /// premise intact is one it should have foreseen.
    public var violations: Int
    public var violationsPremiseBroken: Int
    /// The interference probe over the run (nil for simulations).
    public var probe: ProbeSummary?
    /// Memory over the run (nil for simulations).
    public var memory: MemorySummary?

    enum CodingKeys: String, CodingKey {
        case name, policy, preemption, tasks, interference, probe, memory
        case lockK = "lock_k", elapsedS = "elapsed_s", realtimePriority = "realtime_priority"
        case analysisMethod = "analysis_method", missesExplainedByInterference = "misses_explained_by_interference"
        case violations, violationsPremiseBroken = "violations_premise_broken", analysisHeld = "analysis_held"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(policy, forKey: .policy)
        try c.encode(preemption, forKey: .preemption)
        try c.encode(lockK, forKey: .lockK)
        try c.encode(elapsedS, forKey: .elapsedS)
        try c.encode(realtimePriority, forKey: .realtimePriority)
        try c.encode(analysisMethod, forKey: .analysisMethod)
        try c.encode(tasks, forKey: .tasks)
        try c.encode(interference, forKey: .interference)
        try c.encode(missesExplainedByInterference, forKey: .missesExplainedByInterference)
        try c.encode(violations, forKey: .violations)
        try c.encode(violationsPremiseBroken, forKey: .violationsPremiseBroken)
        try c.encode(analysisHeld, forKey: .analysisHeld)
        try c.encode(probe, forKey: .probe)
        try c.encode(memory, forKey: .memory)
    }

    /// Reads summaries written before interference detection existed, too.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        policy = try c.decode(String.self, forKey: .policy)
        preemption = try c.decode(String.self, forKey: .preemption)
        lockK = try c.decodeIfPresent(Int.self, forKey: .lockK)
        elapsedS = try c.decode(Double.self, forKey: .elapsedS)
        realtimePriority = try c.decode(Bool.self, forKey: .realtimePriority)
        analysisMethod = try c.decode(String.self, forKey: .analysisMethod)
        tasks = try c.decode([TaskSummary].self, forKey: .tasks)
        interference = try c.decodeIfPresent([InterferenceEpisode].self, forKey: .interference) ?? []
        missesExplainedByInterference = try c.decodeIfPresent(Int.self, forKey: .missesExplainedByInterference) ?? 0
        violations = try c.decodeIfPresent(Int.self, forKey: .violations) ?? 0
        violationsPremiseBroken = try c.decodeIfPresent(Int.self, forKey: .violationsPremiseBroken) ?? 0
        probe = try c.decodeIfPresent(ProbeSummary.self, forKey: .probe)
        memory = try c.decodeIfPresent(MemorySummary.self, forKey: .memory)
    }

    public init(_ result: RunResult, analysis: AnalysisResult?) {
        let set = result.taskSet
        name = set.name
        policy = set.policy.rawValue
        preemption = set.preemption.rawValue
        lockK = set.lockK
        elapsedS = Double(result.elapsed) / 1e9
        realtimePriority = result.realtimePriority
        analysisMethod = analysis?.method ?? "none"
        tasks = set.tasks.indices.map { i in
            Self.summarize(set.tasks[i], result.records[i], elapsed: result.elapsed, timing: result.timing[i],
                           bound: analysis?.tasks[i])
        }
        let detected = InterferenceDetector.detect(result, wcets: analysis?.tasks.map(\.wcet))
        interference = detected.episodes
        missesExplainedByInterference = detected.explainedMisses
        (violations, violationsPremiseBroken) = Self.violations(result, analysis: analysis, episodes: detected)
        probe = ProbeSummary(result)
        memory = result.memory.map(MemorySummary.init)
        if let m = result.memory {
            for i in tasks.indices {
                tasks[i].swapIns = m.swapIns[i]
                tasks[i].swapInMsMax = Double(m.swapInMaxNs[i]) / 1e6
                tasks[i].swapWaitMsMax = Double(result.records[i].map(\.swapWait).max() ?? 0) / 1e6
            }
        }
    }

    static func summarize(_ task: TaskSet.Task, _ records: [JobRecord], elapsed: Int64, timing: TimingProfile,
                          bound: TaskBound?) -> TaskSummary {
        let ms = { (ns: Int64) in Double(ns) / 1e6 }
        let completed = records.filter { !$0.skipped }
        let responses = completed.compactMap(\.response)
        var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
        for r in responses { _ = histogram.record(UInt64(max(r, 0))) }
        var jitter = Histogram<UInt64>(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
        // Only releases the thread slept for measure the release mechanism.
        for r in records { if let w = r.wakeup { _ = jitter.record(UInt64(abs(w - r.release))) } }
        let response = responses.isEmpty ? nil : TaskSummary.Response(
            min: ms(responses.min()!), p50: ms(Int64(histogram.valueAtPercentile(50))),
            p90: ms(Int64(histogram.valueAtPercentile(90))), p99: ms(Int64(histogram.valueAtPercentile(99))),
            max: ms(responses.max()!))
        let misses = records.filter { !$0.deadlineMet }.count
        let boundMs = bound?.bound.map { Double($0) / 1e6 }
        let ratio: Double? = if let b = boundMs, b > 0, let m = response?.max { m / b } else { nil }
        return TaskSummary(
            name: task.name, model: task.model ?? "synthetic", periodMs: ms(task.period), deadlineMs: ms(task.deadline),
            jobs: records.count, misses: misses, missRatio: records.isEmpty ? 0 : Double(misses) / Double(records.count),
            skipped: records.count - completed.count, outputErrors: completed.filter { !$0.outputOK }.count,
            responseMs: response, releaseJitterP99Ms: jitter.totalCount > 0 ? ms(Int64(jitter.valueAtPercentile(99))) : 0,
            utilization: elapsed > 0 ? Double(completed.reduce(0) { $0 + $1.execution }) / Double(elapsed) : 0,
            preemptions: completed.reduce(0) { $0 + $1.preemptions },
            lockWaitMaxMs: ms(completed.map(\.lockWait).max() ?? 0), isolatedMaxMs: Double(timing.maxJob) / 1e6,
            boundMs: boundMs, observedBoundRatio: ratio, schedulable: bound?.schedulable,
            meanWidth: task.widths == nil ? nil : {
                let w = completed.compactMap(\.width)
                return w.isEmpty ? nil : w.reduce(0, +) / Double(w.count)
            }(),
            aborted: records.filter(\.aborted).count, overruns: records.filter(\.overran).count,
            accuracy: {
                let images = completed.reduce(0) { $0 + $1.labelledImages }
                guard images > 0 else { return nil }
                return TaskSummary.Accuracy(images: images, top1: Double(completed.reduce(0) { $0 + $1.correctTop1 }) / Double(images),
                                            top5: Double(completed.reduce(0) { $0 + $1.correctTop5 }) / Double(images))
            }())
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// What happened to a task, plainly: `ok` only when it missed nothing and its observed
    /// maximum stayed within its bound; otherwise the misses, the bound exceeded, or that
    /// the analysis did not vouch for it.
    public static func verdict(_ t: TaskSummary) -> String {
        let width = t.meanWidth.map { String(format: ", mean width %.2f", $0) } ?? ""
        let accuracy = t.accuracy.map { String(format: ", top-1 %.1f%%", 100 * $0.top1) } ?? ""
        return plainVerdict(t) + width + accuracy
    }

    static func plainVerdict(_ t: TaskSummary) -> String {
        if t.misses > 0 {
            var why: [String] = []
            if t.skipped > 0 { why.append("\(t.skipped) skipped") }
            if let a = t.aborted, a > 0 { why.append("\(a) aborted") }
            return "MISSED \(t.misses)" + (why.isEmpty ? "" : " (\(why.joined(separator: ", ")))")
        }
        if let ratio = t.observedBoundRatio, ratio > 1 { return String(format: "bound exceeded ×%.2f", ratio) }
        switch t.schedulable {
        case true?: return "ok"
        case false?: return "met, not shown schedulable"
        case nil: return "met, not analysed"
        }
    }

    /// Whether the analysis held: nil when it called no task schedulable; false when such a
    /// task missed a deadline or responded later than its bound.
    public var analysisHeld: Bool? {
        let vouched = tasks.filter { $0.schedulable == true }
        guard !vouched.isEmpty else { return nil }
        return vouched.allSatisfy { $0.misses == 0 && ($0.observedBoundRatio ?? 0) <= 1 }
    }

    /// The summary as an aligned table for the terminal, with a closing line on the analysis.
    public func table() -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.2f", $0) } ?? "-" }
        var table = TextTable([.left("task"), .right("jobs"), .right("miss"), .right("ratio"), .right("min"), .right("p50"),
                               .right("p90"), .right("p99"), .right("max"), .right("bound"), .right("obs/bd"), .right("jit99"),
                               .right("util"), .left("verdict")])
        for t in tasks {
            let r = t.responseMs
            table.append([t.name, String(t.jobs), String(t.misses), String(format: "%.3f", t.missRatio), f(r?.min), f(r?.p50),
                          f(r?.p90), f(r?.p99), f(r?.max), f(t.boundMs),
                          t.observedBoundRatio.map { String(format: "%.3f", $0) } ?? "-",
                          String(format: "%.3f", t.releaseJitterP99Ms), String(format: "%.2f", t.utilization), Self.verdict(t)])
        }
        var lines = [table.render(),
                     "(times in ms from release; bound = analytic response-time bound: \(analysisMethod); obs/bd = max / bound)"]
        switch analysisHeld {
        case true?: lines.append("the analysis held: every task it called schedulable met its deadlines within its bound")
        case false?:
            let broken = tasks.filter { $0.schedulable == true && ($0.misses > 0 || ($0.observedBoundRatio ?? 0) > 1) }.map(\.name)
            lines.append("the analysis did NOT hold for \(broken.joined(separator: ", ")): called schedulable, but missed or exceeded its bound"
                         + (violations > 0 ? " in \(violations) job(s)" : ""))
            // Summaries written before violations were counted have none.
            if violations > 0 {
                let intact = violations - violationsPremiseBroken
                lines.append("  \(violationsPremiseBroken) of them while its premise was broken (a job or a layer on the same cores ran past"
                             + " its analysed length, or inside an interference episode)"
                             + (intact > 0 ? "; \(intact) with the premise intact: an error of the analysis or an overhead it does not model" : ""))
            }
        case nil: lines.append("the analysis called no task schedulable")
        }
        let misses = tasks.reduce(0) { $0 + $1.misses }
        if let p = probe {
            lines.append(String(format: "probe: a %.0f µs kernel every %.0f ms on each core (%.2f%% of a core); kernel time over its median p99 ×%.2f, max ×%.2f; wake-up lateness p99 %.2f ms, max %.2f ms",
                                p.kernelUs, p.periodMs, p.cost * 100, p.p99Inflation, p.maxInflation, p.p99LatenessMs, p.maxLatenessMs))
        }
        if !interference.isEmpty {
            lines.append("interference: \(interference.count) episode(s) in which jobs ran slower than their WCET, woke late on cores the set left free or were held off their cores"
                         + (misses > 0 ? "; \(missesExplainedByInterference) of \(misses) misses fall inside one" : ""))
            for e in interference.prefix(10) {
                let span = String(format: "%.1f–%.1f ms", e.startMs, e.endMs)
                lines.append("  \(span), cores \(e.cores.map(String.init).joined(separator: ",")), tasks "
                             + "\(e.tasks.joined(separator: ", ")): \(e.jobs) slow, stalled or displaced jobs, up to ×"
                             + String(format: "%.2f", e.worstInflation) + " the profiled median"
                             + (e.stallMs.map { String(format: "; woke up to %.2f ms late on free cores", $0) } ?? "")
                             + (e.displacedMs.map { String(format: "; held off its core up to %.2f ms mid-job", $0) } ?? "")
                             + (e.probeInflation.map { String(format: "; probe ×%.2f", $0) } ?? ""))
            }
            if interference.count > 10 { lines.append("  … \(interference.count - 10) more in summary.json") }
        }
        return lines.joined(separator: "\n")
    }
}

/// `trace.csv`: one row per release.
public enum TraceCSV {
    public static let header = "task,job,release_ns,start_ns,end_ns,response_ns,lock_wait_ns,preemptions,deadline_met,output_ok,wakeup_ns,execution_ns,lock_acquired_ns,lock_released_ns,width,aborted,overran,swap_in_ns,swap_in_bytes,swap_wait_ns,cpu_ns"

    public static func render(_ result: RunResult) -> String {
        var out = header + "\n"
        let rows = result.records.joined().sorted { ($0.release, $0.task) < ($1.release, $1.task) }
        for r in rows {
            let name = result.taskSet.tasks[r.task].name
            let opt = { (v: Int64?) in v.map(String.init) ?? "" }
            out += "\(csvField(name)),\(r.job),\(r.release),\(opt(r.start)),\(opt(r.end)),\(opt(r.response)),"
            out += "\(r.lockWait),\(r.preemptions),\(r.deadlineMet),\(r.outputOK),\(opt(r.wakeup)),"
            out += "\(r.skipped ? "" : String(r.execution)),\(opt(r.lockAcquired)),\(opt(r.lockReleased)),"
            out += "\(r.width.map { String($0) } ?? ""),\(r.aborted),\(r.overran),\(r.swapIn),\(r.swapInBytes),\(r.swapWait),\(opt(r.cpu))\n"
        }
        return out
    }

    static func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}
