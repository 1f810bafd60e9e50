import ArgumentParser
import Foundation
import MetronomeRealtime

/// `--exec`: how long each simulated job runs.
struct ExecutionArgument: ExpressibleByArgument {
    /// nil: every job takes its WCET; otherwise the smallest fraction of it.
    var minFraction: Double?

    init?(argument: String) {
        if argument == "wcet" { minFraction = nil; return }
        guard argument.hasPrefix("uniform:"), let f = Double(argument.dropFirst("uniform:".count)), f > 0, f <= 1 else {
            return nil
        }
        minFraction = f
    }

    var defaultValueDescription: String { minFraction.map { "uniform:\($0)" } ?? "wcet" }
}

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate a task set's schedule: what if, before deploying.",
        discussion: """
            A discrete-event simulation under the same rules as `run`: the same dispatcher \
            (policies, layer or job preemption, partitions and global groups), k-exclusion lock, \
            releases (synchronous, offsets) and overrun handling, with zero overheads. Every job \
            takes its WCET, or with --exec uniform:F a seeded random fraction in [F, 1] of it, \
            which shows scheduling anomalies. Synthetic tasks (wcet) are simulated as declared; \
            tasks with only a model are measured first, as `analyze` does. Writes trace.csv, \
            summary.json and report.html like `run`, with the analysis bound beside each task. \
            Default length: three hyperperiods after the largest offset.
            """
    )

    @Argument(help: "Task-set YAML file (default: the built-in demo).") var taskset: String?
    @Option(help: "Simulated time of releases: a number with a unit (ns, us, ms, s), e.g. 3s; default three hyperperiods.",
            transform: DurationArgument.parse)
    var duration: DurationArgument?
    @Option(name: .customLong("exec"), help: "Job execution times: wcet or uniform:F.") var execution = ExecutionArgument(argument: "wcet")!
    @Option(help: "Seed of --exec uniform.") var seed: UInt64 = 1
    @Option(help: "Output directory (default: runs/<name>-sim-<timestamp>).") var out: String?
    @Flag(help: "Overwrite existing output files.") var force = false
    @Option(name: .customLong("trace-json"), help: "Also write the whole run as Chrome trace-event JSON to this file (opens in Perfetto or chrome://tracing).")
    var traceJSON: String?
    @Flag(help: "Print per-task results as JSON instead of a table.") var json = false
    @Flag(help: "Exit with status 3 when a task the analysis called schedulable missed a deadline or exceeded its bound.")
    var strict = false
    @OptionGroup var timing: TimingOptions

    func run() throws {
        let set = try loadTaskSet(taskset)
        let directory = try outputDirectory(out, set: set, suffix: "sim-", force: force)
        let traceURL = try traceJSONFile(traceJSON, force: force)
        let log: (String) -> Void = { if !json { print($0) } }
        var (demands, _, memory) = try taskDemands(set, timing: timing, log: log)
        let analysis = memory.analyze(set, demands: demands.map { $0.last! }, margin: set.isSynthetic ? 1 : timing.margin)
        if let account = memory.account, let model = memory.model {
            // Every job of a swapped task pays one swap-in (its bound) before its first layer, as
            // if no prefetch ever arrived in time; the wait is preemptible, as in a real run.
            for i in set.tasks.indices where account.tasks[i].swappableBytes > 0 {
                let s = model.bound(account.tasks[i].swappableBytes)
                demands[i] = demands[i].map { ScheduleAnalysis.withSwapIn($0, swapIn: s) }
            }
            log("simulating a swap-in before every job of the swapped tasks (no prefetch)")
        }
        let length = duration?.nanoseconds ?? Simulator.defaultDuration(set).duration
        if duration == nil && Simulator.defaultDuration(set).shortened {
            log("note: three hyperperiods hold more than \(Simulator.releaseLimit) releases; simulating \(DurationText.format(length))")
        }
        let exec: Simulator.Execution = execution.minFraction.map { .uniform(minFraction: $0, seed: seed) } ?? .wcet
        let result = try Simulator.run(set, demands: demands.map { $0.last! }, widthDemands: demands,
                                       options: .init(duration: length, execution: exec))
        let summary = RunSummary(result, analysis: analysis)
        try RunOutput.write(result, summary: summary, to: directory, overwrite: force)
        if let traceURL { try ChromeTrace.write(result, to: traceURL, overwrite: force) }
        if json {
            let tasks: [[String: Any]] = summary.tasks.map { t in
                ["name": t.name, "jobs": t.jobs, "misses": t.misses, "max_response_ms": t.responseMs.map { $0.max as Any } ?? NSNull(),
                 "bound_ms": t.boundMs.map { $0 as Any } ?? NSNull(), "schedulable": t.schedulable.map { $0 as Any } ?? NSNull()]
            }
            let object: [String: Any] = ["name": set.name, "simulated_ms": Double(length) / 1e6, "tasks": tasks,
                                         "directory": directory.path]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        } else {
            print("simulated \(DurationText.format(length)) of releases (\(execution.minFraction.map { "uniform:\($0), seed \(seed)" } ?? "every job at its WCET"))")
            print(summary.table())
            print("wrote \(directory.path)/{trace.csv,summary.json,report.html}")
            if let traceURL { print("wrote \(traceURL.path)") }
        }
        if strict && summary.analysisHeld == false { throw ExitCode(3) }
    }
}
