import ArgumentParser
import Foundation
import Metronome
import MetronomeModels
import MetronomeRealtime
import MetronomeTransforms

/// Loads a task's model: zoo name or ONNX file, slimmed to its width and folded by its factor.
func loadTaskModel(_ task: TaskSet.Task) throws -> Graph {
    var graph = try ModelSource.load(task.model)
    if let width = task.width, width != 1 { graph = try slim(graph, width: width) }
    if let factor = task.fold, factor != 1 { graph = try fold(graph, factor: factor).graph }
    return graph
}

struct RunTaskSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a real-time task set and record every job.",
        discussion: """
            Compiles every task's model, measures each one's execution time, then releases all tasks \
            periodically (absolute-time releases on the monotonic clock) under the set's policy. \
            Writes trace.csv, summary.json and report.html to the output directory and prints \
            the summary with the analytic response-time bound beside the observed maximum. \
            Without a file, runs the built-in demo (examples/demo.yaml).
            """
    )

    @Argument(help: "Task-set YAML file (default: the built-in demo).") var taskset: String?
    @Option(help: "Override the run length, in seconds.") var duration: Double?
    @Option(help: "Output directory (default: runs/<name>-<timestamp>).") var out: String?
    @Flag(help: "Overwrite existing output files.") var force = false
    @Option(help: "Timing runs per task before the run (for the analysis).") var timingRuns = 10
    @Option(help: "Timing mode: contended (other partitions' tasks run meanwhile) or isolated.")
    var timing: RealtimeRunner.TimingMode = .contended
    @Option(help: "WCET margin: measured maximum × margin.") var margin = 1.2

    func validate() throws {
        if let d = duration, !(d > 0) { throw ValidationError("--duration must be positive") }
        guard timingRuns >= 1 else { throw ValidationError("--timing-runs must be at least 1") }
        guard margin >= 1 else { throw ValidationError("--margin must be at least 1") }
    }

    func run() throws {
        var set = try taskset.map { try TaskSet.load(path: $0) } ?? TaskSet.load(yaml: TaskSet.demoYAML)
        if let d = duration {
            set.duration = Int64(d * 1e9)
            set.jobs = nil
        }
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let directory = URL(fileURLWithPath: out ?? "runs/\(set.name)-\(stamp)")
        if !force {
            for name in ["trace.csv", "summary.json", "report.html"]
            where FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
                throw ValidationError("\(directory.appendingPathComponent(name).path) already exists; choose another --out or pass --force")
            }
        }
        print("task set '\(set.name)': \(set.tasks.count) tasks, policy \(set.policy.rawValue), preemption \(set.preemption.rawValue), cores \(set.cores)")
        print("preparing (compile, reference outputs, \(timingRuns) \(timing.rawValue) timing runs per task):")
        let prepared = try RealtimeRunner.prepare(set, loader: { try loadTaskModel($0) }, timingRuns: timingRuns,
                                                  timing: timing) { print($0) }
        let analysis = ScheduleAnalysis.analyze(set, timing: prepared.map(\.timing), margin: margin)
        let length = set.duration.map { String(format: "%.1f s", Double($0) / 1e9) } ?? "\(set.jobs ?? 0) jobs per task"
        print("running for \(length)...")
        let result = try RealtimeRunner.run(set, prepared: prepared) { print($0) }
        let summary = RunSummary(result, analysis: analysis)
        try RunOutput.write(result, summary: summary, to: directory, overwrite: force)
        print(summary.table())
        print("wrote \(directory.path)/{trace.csv,summary.json,report.html}")
    }
}

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Schedulability analysis of a task set from execution times measured here.",
        discussion: """
            Measures each task (its threads, pinned to its cores; by default while tasks of \
            other partitions run on the remaining cores) to estimate its WCET as the measured \
            maximum × margin, then runs the analysis for the set's policy and prints \
            each task's response-time bound and verdict.
            """
    )

    @Argument(help: "Task-set YAML file (default: the built-in demo).") var taskset: String?
    @Option(help: "Timing runs per task.") var runs = 20
    @Option(help: "Timing mode: contended (other partitions' tasks run meanwhile) or isolated.")
    var timing: RealtimeRunner.TimingMode = .contended
    @Option(help: "WCET margin: measured maximum × margin.") var margin = 1.2
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard margin >= 1 else { throw ValidationError("--margin must be at least 1") }
    }

    func run() throws {
        let set = try taskset.map { try TaskSet.load(path: $0) } ?? TaskSet.load(yaml: TaskSet.demoYAML)
        let prepared = try RealtimeRunner.prepare(set, loader: { try loadTaskModel($0) }, timingRuns: runs,
                                                  timing: timing) { line in
            if !json { print(line) }
        }
        let analysis = ScheduleAnalysis.analyze(set, timing: prepared.map(\.timing), margin: margin)
        if json {
            let rows: [[String: Any]] = set.tasks.indices.map { i in
                let b = analysis.tasks[i]
                var row: [String: Any] = [
                    "name": set.tasks[i].name, "wcet_ms": Double(b.wcet) / 1e6, "longest_layer_ms": Double(b.longestLayer) / 1e6,
                    "period_ms": Double(set.tasks[i].period) / 1e6, "deadline_ms": Double(set.tasks[i].deadline) / 1e6,
                    "note": b.note,
                ]
                row["bound_ms"] = b.bound.map { Double($0) / 1e6 } ?? NSNull()
                row["schedulable"] = b.schedulable ?? NSNull()
                return row
            }
            let object: [String: Any] = ["name": set.name, "method": analysis.method, "margin": margin,
                                         "schedulable": analysis.schedulable ?? NSNull(), "tasks": rows]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
            return
        }
        print("analysis: \(analysis.method); WCET = measured max × \(margin)")
        print("task            wcet ms  layer ms  period ms  deadline ms  bound ms  verdict")
        for (i, t) in set.tasks.enumerated() {
            let b = analysis.tasks[i]
            let verdict = b.schedulable.map { $0 ? "schedulable" : "NOT schedulable" } ?? "unknown"
            print(String(format: "%-14@ %8.2f %9.2f %10.2f %12.2f %9@  %@%@", String(t.name.prefix(14)) as NSString,
                         Double(b.wcet) / 1e6, Double(b.longestLayer) / 1e6, Double(t.period) / 1e6, Double(t.deadline) / 1e6,
                         (b.bound.map { String(format: "%.2f", Double($0) / 1e6) } ?? "-") as NSString, verdict as NSString,
                         (b.note.isEmpty ? "" : " (\(b.note))") as NSString))
        }
        if let all = analysis.schedulable { print(all ? "the task set is schedulable" : "the task set is NOT schedulable") }
    }
}

extension RealtimeRunner.TimingMode: ExpressibleByArgument {}
