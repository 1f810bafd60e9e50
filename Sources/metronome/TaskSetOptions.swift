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

/// Each task's demand at each of its widths (narrowest first) for the analysis or the
/// simulator: the declared `wcet` where every task gives one, otherwise measured here (which
/// needs every task's model).
func taskDemands(_ set: TaskSet, timing: TimingOptions, log: (String) -> Void) throws -> (demands: [[TaskDemand]], prepared: [PreparedTask]?) {
    let declared = set.tasks.compactMap { TaskDemand.declaredPerWidth($0) }
    if declared.count == set.tasks.count { return (declared, nil) }
    if let i = set.tasks.firstIndex(where: { $0.model == nil }) {
        throw TaskSetError(path: "tasks[\(i)].model", message: "a synthetic task (wcet only) cannot be mixed with measured tasks; give every task a wcet, or every task a model")
    }
    log("measuring (\(timing.runs) \(timing.timing.rawValue) timing runs per task):")
    let prepared = try RealtimeRunner.prepare(set, loader: { try loadTaskModel($0) }, timingRuns: timing.runs,
                                              timing: timing.timing, log: log)
    return (try timing.demands(set, prepared: prepared, log: log), prepared)
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
