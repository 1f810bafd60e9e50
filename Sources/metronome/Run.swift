import ArgumentParser
import Foundation
import Metronome
import MetronomeModels
import MetronomeRealtime
import MetronomeTraining
import MetronomeTransforms

/// Loads a task's model: zoo name or ONNX file, slimmed to its width and folded by its factor.
func loadTaskModel(_ task: TaskSet.Task) throws -> Graph {
    guard let model = task.model else { throw MetronomeError.invalidArgument("task '\(task.name)' has no model") }
    var graph: Graph
    if let width = task.width, let family = SlimmableZoo.family(named: model) {
        // A slimmable family at one of its widths is that width's own model (private batch norms).
        guard family.widths.contains(width) else {
            throw MetronomeError.invalidArgument("\(model) has widths \(family.widths.map { String($0) }.joined(separator: ", ")), not \(width)")
        }
        graph = try ModelSource.load(width == 1 ? model : "\(model)@\(width)")
    } else {
        graph = try ModelSource.load(model)
        if let width = task.width, width != 1 { graph = try slim(graph, width: width) }
    }
    if let factor = task.fold, factor != 1 { graph = try fold(graph, factor: factor).graph }
    return graph
}

/// Reads a task's `data` (fashion-mnist:test, npy:…, folder:…) for accuracy in real-time runs.
@Sendable func loadTaskData(_ spec: String) throws -> LabelledData {
    let set = try LabelledImages.load(spec)
    return LabelledData(shape: set.shape, pixels: set.pixels, labels: set.labels)
}

struct RunTaskSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a real-time task set and record every job.",
        discussion: """
            Compiles every task's model, measures each one's execution time, then releases all tasks \
            periodically (absolute-time releases on the monotonic clock) under the set's policy. \
            Writes trace.csv, summary.json and report.html to the output directory (with --trace-json, \
            also a Chrome trace-event file) and prints \
            the summary with the analytic response-time bound beside the observed maximum. \
            Without a file, runs the built-in demo (examples/demo.yaml). Durations take a unit: \
            ns, us, ms or s.
            """
    )

    @Argument(help: "Task-set YAML file (default: the built-in demo).") var taskset: String?
    @Option(help: "Override the run length: a number with a unit (ns, us, ms, s), e.g. 3s.", transform: DurationArgument.parse)
    var duration: DurationArgument?
    @Option(help: "Output directory (default: runs/<name>-<timestamp>).") var out: String?
    @Flag(help: "Overwrite existing output files.") var force = false
    @Flag(help: "Print summary.json on stdout instead of the table (progress goes to stderr).") var json = false
    @Flag(help: "Exit with status 3 when a task the analysis called schedulable missed a deadline or exceeded its bound.")
    var strict = false
    @Option(name: .customLong("trace-json"), help: "Also write the whole run as Chrome trace-event JSON to this file (opens in Perfetto or chrome://tracing).")
    var traceJSON: String?
    @Flag(name: .customLong("enforce-cgroup"), help: "With a memory budget: run the set inside a memory cgroup limited to the budget plus the runtime's own memory (measured after preparation), and report the cgroup's peak.")
    var enforceCgroup = false
    @OptionGroup var timing: TimingOptions

    func run() throws {
        var set = try loadTaskSet(taskset)
        if let d = duration {
            set.duration = d.nanoseconds
            set.jobs = nil
        }
        if enforceCgroup && set.memory == nil {
            throw ValidationError("--enforce-cgroup needs a memory budget (the set's memory.budget key)")
        }
        // The group is entered before anything is loaded, so that all the set's memory is charged to it.
        var group: ProfileCgroup?
        if enforceCgroup {
            guard let g = ProfileCgroup.make(limit: 0, serial: 0, prefix: "metronome-run"), g.enter() else {
                throw ValidationError("--enforce-cgroup: this machine lets no memory cgroup be created and entered here (cgroup v2 with the memory controller delegated, or a writable v1 memory hierarchy, is needed)")
            }
            group = g
        }
        defer {
            if let group {
                _ = group.leave()
                group.remove()
            }
        }
        let directory = try outputDirectory(out, set: set, force: force)
        let traceURL = try traceJSONFile(traceJSON, force: force)
        let log: (String) -> Void = json ? { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } : { print($0) }
        log("task set '\(set.name)': \(set.tasks.count) tasks, policy \(set.policy.rawValue), preemption \(set.preemption.rawValue), cores \(set.cores)")
        let swapper = try makeSwapper(set, margin: timing.margin, log: log)
        defer { swapper?.close() }
        log("preparing (compile, reference outputs, \(timing.runs) \(timing.timing.rawValue) timing runs per task):")
        let prepared = try RealtimeRunner.prepare(set, loader: { try loadTaskModel($0) }, timingRuns: timing.runs,
                                                  timing: timing.timing, swapper: swapper, data: loadTaskData, log: log)
        let demands = try timing.demands(set, prepared: prepared, log: log)
        let memory = MemoryContext(account: set.memory == nil ? nil : MemoryAccount(set, prepared: prepared), model: swapper?.model,
                                   ioCores: swapper?.ioCores)
        // With widths the bounds are those of the nominal mode (every task at its widest).
        let analysis = memory.analyze(set, demands: demands.map { $0.last! }, margin: timing.margin)
        let length = set.duration.map { String(format: "%.1f s", Double($0) / 1e9) } ?? "\(set.jobs ?? 0) jobs per task"
        var cgroupLimit: Int?
        if let group, let budget = set.memory?.budget, let swapper {
            // The runtime's own memory is what the group holds beyond the accounted bytes once
            // everything is prepared; the limit allows that (plus 32 MiB of slack) on top of the budget.
            let usage = group.usageBytes ?? 0
            let overhead = max(0, usage - swapper.accountedBytes)
            let limit = budget + overhead + (32 << 20)
            guard group.setLimit(limit) else { throw ValidationError("--enforce-cgroup: cannot set the cgroup's limit to \(limit) bytes") }
            group.resetPeak()
            cgroupLimit = limit
            log("memory cgroup \(group.path): limit \(ByteCountText.format(limit)) = budget + \(ByteCountText.format(overhead)) of runtime memory + 32 MiB")
        }
        log("running for \(length)...")
        var result = try RealtimeRunner.run(set, prepared: prepared, demands: demands, swapper: swapper, log: log)
        if let group {
            result.memory?.cgroupLimit = cgroupLimit
            result.memory?.cgroupPeak = group.peakBytes
            if group.oomKilled { log("the memory cgroup's OOM killer ended a process of the run") }
        }
        let summary = RunSummary(result, analysis: analysis)
        try RunOutput.write(result, summary: summary, to: directory, overwrite: force)
        if let traceURL { try ChromeTrace.write(result, to: traceURL, overwrite: force) }
        if json {
            print(String(decoding: try summary.json(), as: UTF8.self))
        } else {
            print(summary.table())
            print("wrote \(directory.path)/{trace.csv,summary.json,report.html}")
            if let traceURL { print("wrote \(traceURL.path)") }
        }
        if strict && summary.analysisHeld == false { throw ExitCode(3) }
    }
}

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Schedulability analysis of a task set.",
        discussion: """
            Tasks that declare `wcet` (synthetic tasks) are analysed as declared, without running \
            anything. Otherwise each task is measured here (its threads, pinned to its cores; by \
            default while tasks of other partitions run on the remaining cores) and its WCET is \
            the measured maximum × margin, its longest non-preemptive region the longest layer \
            observed × margin. Prints each task's response-time bound, verdict and method. A \
            verdict "schedulable" is a guarantee under those WCETs; "NOT schedulable" means the \
            test could not show it; "not analysed" says why.
            """
    )

    @Argument(help: "Task-set YAML file (default: the built-in demo).") var taskset: String?
    @OptionGroup var timing: TimingOptions
    @Flag(help: "Take each task's WCET from the latency predictor instead of measuring it: nothing is run.")
    var predicted = false
    @Option(help: "The predictor JSON for --predicted (default: predictor.json in the cache directory).")
    var predictor: String?
    @Flag(help: "With --predicted: accept a predictor fitted on another machine.")
    var force = false
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        if predictor != nil && !predicted { throw ValidationError("--predictor applies only with --predicted") }
    }

    func run() throws {
        let set = try loadTaskSet(taskset)
        let log: (String) -> Void = { if !json { print($0) } }
        let demands: [[TaskDemand]]
        var memory = MemoryContext()
        if predicted {
            if set.memory != nil { throw ValidationError("--predicted does not analyse a memory budget yet; analyse the set without --predicted") }
            demands = try predictedDemands(set, predictorPath: predictor, acceptOtherMachine: force, log: log)
        } else {
            (demands, _, memory) = try taskDemands(set, timing: timing, log: log)
        }
        if let account = memory.account { log(account.text(names: set.tasks.map(\.name))) }
        let margin = set.isSynthetic || predicted ? 1 : timing.margin
        var nominal = AnalysisReport(set: set, analysis: memory.analyze(set, demands: demands.map { $0.last! }, margin: margin))
        nominal.memory = memory.account
        nominal.swapModel = memory.model
        // With widths: the guaranteed mode (every task at its narrowest) beside the nominal one.
        let guaranteed = demands.contains { $0.count > 1 }
            ? AnalysisReport(set: set, analysis: memory.analyze(set, demands: demands.map { $0.first! }, margin: margin))
            : nil
        if json {
            nominal.guaranteed = guaranteed?.tasks
            nominal.guaranteedSchedulable = guaranteed?.schedulable
            print(try nominal.json())
        } else if let guaranteed {
            print("nominal mode (every task at its widest width):")
            print(nominal.text())
            print("\nguaranteed mode (every task at its narrowest width):")
            print(guaranteed.text())
        } else {
            print(nominal.text())
        }
    }
}
