import ArgumentParser
import Foundation
import MetronomeRealtime

/// A duration flag: a number with a unit, as in task-set files (`3s`, `500ms`, `250us`, `100ns`).
/// Used through `@Option(transform: DurationArgument.parse)` so a bad value gets a message
/// that says what is expected.
struct DurationArgument: Sendable {
    var nanoseconds: Int64

    static func parse(_ text: String) throws -> DurationArgument {
        guard let ns = DurationText.parse(text) else {
            throw ValidationError("'\(text)' is not a duration; write a number with a unit: ns, us, ms or s (e.g. 3s, 500ms)")
        }
        guard ns > 0 else { throw ValidationError("'\(text)' must be positive") }
        return DurationArgument(nanoseconds: ns)
    }
}

/// How a WCET is estimated from timing runs.
enum WCETMethod: String, ExpressibleByArgument, CaseIterable {
    /// The longest timing run × margin.
    case max
    /// A Gumbel fit to block maxima (MBPTA): the time one job exceeds with the given probability.
    case evt
}

/// How a task set's execution times are measured (and turned into WCETs) for the analysis:
/// shared by `run`, `analyze` and `simulate`.
struct TimingOptions: ParsableArguments {
    @Option(name: .customLong("timing-runs"), help: "Timing runs per task before the analysis (evt needs at least 200).")
    var runs = 10
    @Option(help: "Timing mode: contended (other partitions' tasks run meanwhile) or isolated.")
    var timing: RealtimeRunner.TimingMode = .contended
    @Option(help: "WCET margin: the estimate × margin (also applied to the longest layer).")
    var margin = 1.2
    @Option(help: "WCET estimate: max (longest timing run) or evt (probabilistic, Gumbel fit to block maxima).")
    var wcet: WCETMethod = .max
    @Option(help: "With --wcet evt: probability that one job exceeds the WCET.")
    var exceedance = 1e-9

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--timing-runs must be at least 1") }
        guard margin >= 1 else { throw ValidationError("--margin must be at least 1") }
        guard exceedance > 0 && exceedance < 1 else { throw ValidationError("--exceedance must be in (0, 1)") }
        let needed = ProbabilisticWCET.minimumBlocks * 10
        if wcet == .evt && runs < needed {
            throw ValidationError("--wcet evt fits \(ProbabilisticWCET.minimumBlocks) blocks of 10 timing runs: pass --timing-runs \(needed) or more")
        }
    }

    /// The analysis demand of each measured task at each of its widths (narrowest first;
    /// declared `wcet`s win), logging the probabilistic fits.
    func demands(_ set: TaskSet, prepared: [PreparedTask], log: (String) -> Void) throws -> [[TaskDemand]] {
        try set.tasks.indices.map { i in
            if let declared = TaskDemand.declaredPerWidth(set.tasks[i]) { return declared }
            return try (0..<prepared[i].variantCount).map { w in
                let t = prepared[i].variant(w).timing
                let d = TaskDemand(measured: t, margin: margin)
                guard wcet == .evt else { return d }
                let fit = try ProbabilisticWCET.estimate(samples: t.jobSamples, exceedanceProbability: exceedance)
                let label = set.tasks[i].widths.map { "\(set.tasks[i].name)@\($0[w])" } ?? set.tasks[i].name
                log(String(format: "  %@: pWCET(%.0e per job) %.2f ms from %d blocks (Gumbel μ %.2f ms, β %.3f ms), observed max %.2f ms%@",
                           label, exceedance, fit.boundNs / 1e6, fit.blocks, fit.location / 1e6, fit.scale / 1e6,
                           fit.observedMaxNs / 1e6, fit.iidPassed ? "" : "; i.i.d. checks FAILED: the probability is not supported by the samples"))
                return TaskDemand(wcet: Int64((fit.boundNs * margin).rounded(.up)), npr: d.npr, regions: d.regions)
            }
        }
    }
}

/// Loads the task set in `path`, or the built-in demo.
func loadTaskSet(_ path: String?) throws -> TaskSet {
    try path.map { try TaskSet.load(path: $0) } ?? TaskSet.load(yaml: TaskSet.demoYAML)
}

/// The memory side of a task set: its account against the budget and the swap-in time model
/// (nil without a budget or without swapped tasks), and the swapper when one was kept.
struct MemoryContext {
    var account: MemoryAccount?
    var model: SwapTimeModel?
    var swapper: WeightSwapper?
    /// Where the swap I/O thread runs (nil: on the set's cores).
    var ioCores: [Int]?

    /// The analysis of `set` with these demands, under the budget when there is one.
    func analyze(_ set: TaskSet, demands: [TaskDemand], margin: Double) -> AnalysisResult {
        ScheduleAnalysis.analyze(set, demands: demands, margin: margin, memory: account, swap: model, ioCores: ioCores)
    }
}

/// A swapper for a set with a memory budget (its I/O thread above the jobs when the set is
/// managed), with the swap-in time measured when some task swaps.
func makeSwapper(_ set: TaskSet, margin: Double, log: (String) -> Void) throws -> WeightSwapper? {
    guard let memory = set.memory else { return nil }
    let swaps = set.tasks.contains { $0.swap }
    if swaps { log("measuring swap-in times in \(memory.swapDirectory ?? "the temporary directory"):") }
    let spare = WeightSwapper.spareCores(for: set)
    if swaps {
        log(spare.map { "  the swap I/O thread runs on core(s) \($0.map(String.init).joined(separator: ",")), outside the set's" }
            ?? "  the swap I/O thread shares the set's cores (its CPU time is charged to the tasks)")
    }
    return try WeightSwapper(memory: memory, calibrate: swaps, margin: margin,
                             ioPriority: set.policy == .unmanaged ? 0 : 55, ioCores: spare, log: log)
}

/// Each task's demand at each of its widths (narrowest first) for the analysis or the
/// simulator: the declared `wcet` where every task gives one, otherwise measured here (which
/// needs every task's model). With a memory budget, also the set's memory account (declared
/// `weights` for synthetic tasks) and the measured swap-in time; the swapper is kept open
/// for a run when `keepSwapper`.
func taskDemands(_ set: TaskSet, timing: TimingOptions, keepSwapper: Bool = false,
                 log: (String) -> Void) throws -> (demands: [[TaskDemand]], prepared: [PreparedTask]?, memory: MemoryContext) {
    let declared = set.tasks.compactMap { TaskDemand.declaredPerWidth($0) }
    if declared.count == set.tasks.count {
        var memory = MemoryContext()
        if let budget = set.memory?.budget {
            memory.account = MemoryAccount(budget: budget, tasks: set.tasks.map { TaskMemory(weights: $0.weightBytes ?? 0, swappable: $0.swap) },
                                           runningAtOnce: ScheduleAnalysis.runningGroups(set))
            if set.tasks.contains(where: { $0.swap }) {
                let swapper = try makeSwapper(set, margin: timing.margin, log: log)
                memory.model = swapper?.model
                memory.ioCores = swapper?.ioCores
                swapper?.close()
            }
        }
        return (declared, nil, memory)
    }
    if let i = set.tasks.firstIndex(where: { $0.model == nil }) {
        throw TaskSetError(path: "tasks[\(i)].model", message: "a synthetic task (wcet only) cannot be mixed with measured tasks; give every task a wcet, or every task a model")
    }
    let swapper = try makeSwapper(set, margin: timing.margin, log: log)
    do {
        log("measuring (\(timing.runs) \(timing.timing.rawValue) timing runs per task):")
        let prepared = try RealtimeRunner.prepare(set, loader: { try loadTaskModel($0) }, timingRuns: timing.runs,
                                                  timing: timing.timing, swapper: swapper, data: loadTaskData, log: log)
        let memory = MemoryContext(account: set.memory == nil ? nil : MemoryAccount(set, prepared: prepared), model: swapper?.model,
                                   swapper: keepSwapper ? swapper : nil, ioCores: swapper?.ioCores)
        if !keepSwapper { swapper?.close() }
        return (try timing.demands(set, prepared: prepared, log: log), prepared, memory)
    } catch {
        swapper?.close()
        throw error
    }
}

/// Where a command writes its run files: `--out`, or `runs/<name>-<suffix><timestamp>`;
/// refuses to replace existing files unless forced.
func outputDirectory(_ out: String?, set: TaskSet, suffix: String = "", force: Bool) throws -> URL {
    let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
    let directory = URL(fileURLWithPath: out ?? "runs/\(set.name)-\(suffix)\(stamp)")
    if !force {
        for name in ["trace.csv", "summary.json", "report.html"]
        where FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
            throw ValidationError("\(directory.appendingPathComponent(name).path) already exists; choose another --out or pass --force")
        }
    }
    return directory
}

extension RealtimeRunner.TimingMode: ExpressibleByArgument {}

/// `--trace-json FILE`: checked before the run (which may take long), so that an existing file
/// is refused up front unless forced.
func traceJSONFile(_ path: String?, force: Bool) throws -> URL? {
    guard let path else { return nil }
    let url = URL(fileURLWithPath: path)
    if !force && FileManager.default.fileExists(atPath: url.path) {
        throw ValidationError("\(url.path) already exists; choose another --trace-json or pass --force")
    }
    return url
}
