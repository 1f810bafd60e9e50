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

/// How a task set's execution times are measured (and turned into WCETs) for the analysis:
/// shared by `run`, `analyze` and `simulate`.
struct TimingOptions: ParsableArguments {
    @Option(name: .customLong("timing-runs"), help: "Timing runs per task before the analysis.")
    var runs = 10
    @Option(help: "Timing mode: contended (other partitions' tasks run meanwhile) or isolated.")
    var timing: RealtimeRunner.TimingMode = .contended
    @Option(help: "WCET margin: measured maximum × margin.")
    var margin = 1.2

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--timing-runs must be at least 1") }
        guard margin >= 1 else { throw ValidationError("--margin must be at least 1") }
    }
}

/// Loads the task set in `path`, or the built-in demo.
func loadTaskSet(_ path: String?) throws -> TaskSet {
    try path.map { try TaskSet.load(path: $0) } ?? TaskSet.load(yaml: TaskSet.demoYAML)
}

/// Each task's demand for the analysis or the simulator: the declared `wcet` where every
/// task gives one, otherwise measured here (which needs every task's model).
func taskDemands(_ set: TaskSet, timing: TimingOptions, log: (String) -> Void) throws -> (demands: [TaskDemand], prepared: [PreparedTask]?) {
    let declared = set.tasks.compactMap { TaskDemand(declared: $0) }
    if declared.count == set.tasks.count { return (declared, nil) }
    if let i = set.tasks.firstIndex(where: { $0.model == nil }) {
        throw TaskSetError(path: "tasks[\(i)].model", message: "a synthetic task (wcet only) cannot be mixed with measured tasks; give every task a wcet, or every task a model")
    }
    log("measuring (\(timing.runs) \(timing.timing.rawValue) timing runs per task):")
    let prepared = try RealtimeRunner.prepare(set, loader: { try loadTaskModel($0) }, timingRuns: timing.runs,
                                              timing: timing.timing, log: log)
    let demands = set.tasks.indices.map { i in
        TaskDemand(declared: set.tasks[i]) ?? TaskDemand(measured: prepared[i].timing, margin: timing.margin)
    }
    return (demands, prepared)
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
