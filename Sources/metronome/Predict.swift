import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeModels
import MetronomeRealtime
import MetronomeTraining

/// What `metronome predict` reports: the predicted latency with its per-kernel breakdown, the
/// FLOPs baseline, and the memory the compiled plan needs.
struct PredictionReport: Codable {
    struct Kernel: Codable {
        var index: Int
        var name: String
        var family: String
        var implementation: String
        var predictedMs: Double

        enum CodingKeys: String, CodingKey {
            case index, name, family, implementation, predictedMs = "predicted_ms"
        }
    }

    struct Memory: Codable {
        var weightBytes: Int
        var arenaBytes: Int
        var scratchpadBytes: Int
        var ioBytes: Int

        enum CodingKeys: String, CodingKey {
            case weightBytes = "weight_bytes", arenaBytes = "arena_bytes", scratchpadBytes = "scratchpad_bytes", ioBytes = "io_bytes"
        }
    }

    var model: String
    var batch: Int
    var threads: Int
    var latencyMs: Double
    var baselineMs: Double?
    var overheadMs: Double
    var memoryBytes: Int
    var memory: Memory
    /// The plan's bytes plus what the runtime holds beyond it: oneDNN's primitives (measured
    /// by compiling the model in a child process that runs nothing) and what implementations
    /// allocate once per process (fitted on the predictor's profiles): the process's expected
    /// anonymous memory. Nil for a predictor fitted on profiles without memory columns.
    var residentBytes: Int?
    /// Implementations of this plan the predictor's memory fit never saw (counted as holding
    /// nothing once per process).
    var unprofiledImplementations: [String]?
    var kernels: [Kernel]
    var predictor: String
    var machineMatches: Bool
    /// The predictor's cross-validated 99th-percentile relative error, when it has one.
    var p99RelativeError: Double?
    /// Batch or thread counts outside those the predictor was fitted on.
    var extrapolated: Bool
    /// `inference`, or `train` for one training step (forward, loss, backward, Adam update).
    var stage = "inference"

    enum CodingKeys: String, CodingKey {
        case stage
        case model, batch, threads, latencyMs = "latency_ms", baselineMs = "flops_baseline_ms", overheadMs = "overhead_ms"
        case memoryBytes = "memory_bytes", residentBytes = "resident_bytes", unprofiledImplementations = "unprofiled_implementations", memory, kernels, predictor, machineMatches = "machine_matches"
        case p99RelativeError = "p99_relative_error", extrapolated
    }

    /// Predicts `plan` (compiled for `batch` and `threads`) with `predictor`.
    init(model: String, plan: Plan, batch: Int, flops: Int, predictor: LatencyPredictor, predictorPath: String) throws {
        let io = (plan.program.inputs + plan.program.outputs).reduce(0) { $0 + plan.program.values[$1].count * 4 }
        try self.init(model: model, kernels: plan.kernelInfo, batch: batch, threads: plan.threads, flops: flops,
                      memory: Memory(weightBytes: plan.weightBytes, arenaBytes: plan.arenaBytes, scratchpadBytes: plan.scratchpadBytes,
                                     ioBytes: io),
                      predictor: predictor, predictorPath: predictorPath)
    }

    /// Adds the expected resident memory of a plan of `kernels`: the plan, what compiling it
    /// left resident beyond its weights (`compiledBytes`, ``ProfileRecord/compiledRuntimeBytes``)
    /// and `runtime`'s once-per-process bytes.
    mutating func addResident(_ runtime: RuntimeMemory, kernels: [KernelInfo], compiledBytes: Int) {
        residentBytes = memoryBytes + runtime.bytes(kernels: kernels, threads: threads, compiledBytes: compiledBytes)
        unprofiledImplementations = runtime.unprofiled(kernels)
    }

    /// Predicts a training step of `trainer` with a training-step predictor. Memory is the
    /// trainer's, as `profile --stage train` plans it (``Trainer/plannedMemory(threads:)``).
    init(model: String, trainer: Trainer, threads: Int, flops: Int, predictor: LatencyPredictor, predictorPath: String) throws {
        let m = try trainer.plannedMemory(threads: threads)
        try self.init(model: model, kernels: try trainer.kernelInfo(threads: threads), batch: trainer.batch, threads: threads, flops: flops,
                      memory: Memory(weightBytes: m.weights, arenaBytes: m.arena, scratchpadBytes: m.scratchpad, ioBytes: m.io),
                      predictor: predictor, predictorPath: predictorPath)
        stage = "train"
    }

    init(model: String, kernels infos: [KernelInfo], batch: Int, threads: Int, flops: Int, memory: Memory,
         predictor: LatencyPredictor, predictorPath: String) throws {
        let times = try predictor.kernelMilliseconds(infos, threads: threads)
        self.model = model
        self.batch = batch
        self.threads = threads
        latencyMs = predictor.milliseconds(composing: times)
        overheadMs = latencyMs - times.reduce(0, +)
        baselineMs = predictor.baselineMilliseconds(flops: flops, threads: threads)
        self.memory = memory
        memoryBytes = memory.weightBytes + memory.arenaBytes + memory.scratchpadBytes + memory.ioBytes
        kernels = zip(infos, times).map {
            Kernel(index: $0.index, name: $0.name, family: KernelFamily($0).rawValue, implementation: $0.implementation, predictedMs: $1)
        }
        self.predictor = predictorPath
        machineMatches = MachineInfo.current().fingerprint == predictor.machine.fingerprint
        p99RelativeError = predictor.validation?.p99RelativeError
        extrapolated = !predictor.batches.contains(batch) || !predictor.threads.contains(threads)
    }

    func render() -> String {
        var table = TextTable([.right("#"), .left("KERNEL"), .left("FAMILY"), .left("IMPLEMENTATION"), .right("PREDICTED MS"), .right("SHARE")])
        let total = max(kernels.reduce(0) { $0 + $1.predictedMs }, 1e-12)
        for k in kernels {
            table.append([String(k.index), LayerReport.clip(k.name, 32), k.family, k.implementation,
                          String(format: "%.4f", k.predictedMs), String(format: "%.1f%%", k.predictedMs / total * 100)])
        }
        var lines = [table.render(), ""]
        lines.append(String(format: "%@%@ at batch %d, %d thread(s): predicted %.3f ms (kernels %.3f + dispatch overhead %.3f)",
                            model, stage == "train" ? " training step" : "", batch, threads, latencyMs, latencyMs - overheadMs, overheadMs))
        if let baselineMs { lines.append(String(format: "FLOPs-only linear baseline: %.3f ms", baselineMs)) }
        if let p99RelativeError {
            lines.append(String(format: "cross-validated p99 relative error of this predictor: %.1f%%", p99RelativeError * 100))
        }
        func mib(_ b: Int) -> String { String(format: "%.2f MiB", Double(b) / 1_048_576) }
        lines.append("memory (computed from the \(stage == "train" ? "trainer" : "plan")): \(mib(memoryBytes)) = weights \(mib(memory.weightBytes)) + arena \(mib(memory.arenaBytes)) + scratchpad \(mib(memory.scratchpadBytes)) + inputs/outputs \(mib(memory.ioBytes))")
        if let residentBytes {
            lines.append("expected resident memory: \(mib(residentBytes)) (the plan + \(mib(residentBytes - memoryBytes)) oneDNN's primitives and once-per-process buffers hold beyond it)")
        }
        if let unprofiled = unprofiledImplementations, !unprofiled.isEmpty {
            lines.append("note: the predictor's profiles never used \(unprofiled.joined(separator: ", ")); counted as allocating nothing once per process")
        }
        return lines.joined(separator: "\n")
    }
}

/// `metronome predict`: latency and memory of a network that need not have run here.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict a model's latency (per kernel) and compute its memory, without running it.",
        discussion: """
            Compiles MODEL for --batch and --threads (nothing is run), predicts each compiled \\
            kernel with the predictor (`metronome fit`; default: predictor.json in the cache \\
            directory, which `make predictor` builds) and sums them with the dispatch overhead. \\
            Memory is computed from the plan: weights in their compiled layouts, the activation \\
            arena, oneDNN's scratchpad, inputs and outputs; the expected resident memory adds \
            what oneDNN's primitives hold (JIT code and objects, measured by compiling MODEL \
            again in a child process that runs nothing) and what implementations allocate once \
            per process (fitted on the predictor's profiles). Warns when this machine is not the \\
            one the predictor was fitted on, and when --batch or --threads lie outside its \\
            training grid.
            """)

    @Argument(help: "A zoo model name or an .onnx file.") var model: String
    @Option(help: "The predictor JSON (default: predictor.json in the cache directory).") var predictor: String?
    @Option(help: "Images per inference.") var batch = 1
    @Option(help: "Threads per inference.") var threads = 1
    @Option(help: "What to predict: inference, or train (one training step).") var stage: ProfileStage = .inference
    @Flag(help: "Print one JSON object (latency_ms, memory_bytes, kernels, …).") var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    static func loadPredictor(_ path: String?, stage: ProfileStage = .inference) throws -> (LatencyPredictor, String) {
        let file = path ?? Fit.defaultPath(stage: stage)
        guard FileManager.default.fileExists(atPath: file) else {
            throw ValidationError(path == nil
                ? (stage == .train
                    ? "no training-step predictor at \(file): run `make train-predictor` (or `metronome fit --stage train`) first, or pass --predictor"
                    : "no predictor at \(file): run `make predictor` (or `metronome fit`) first, or pass --predictor")
                : "\(file) does not exist")
        }
        let predictor: LatencyPredictor
        do { predictor = try LatencyPredictor.load(file) } catch { throw ValidationError("\(error)") }
        guard predictor.stageName == stage.rawValue else {
            throw ValidationError(predictor.stageName == "train"
                ? "\(file) predicts training steps (fitted with --stage train); it cannot predict inference"
                : "\(file) predicts inference; a training step needs a predictor fitted on `profile --stage train --layers` rows (`fit --stage train`)")
        }
        return (predictor, file)
    }

    /// What compiling MODEL leaves resident beyond its weights (oneDNN's primitives), read in a
    /// fresh child process (`profile-worker --compile-only`, which compiles and runs nothing) so
    /// that this process's own allocations do not count; nil, with a warning, if it fails.
    func compiledRuntimeBytes() -> Int? {
        let arguments = ["profile-worker", "--model", model, "--batch", String(batch), "--threads", String(threads),
                         "--runs", "0", "--warmup", "0", "--compile-only"]
        let reason: String
        do {
            let outcome = try ChildProcess.run(try Profile.executablePath(), arguments, timeout: 600)
            if let bytes = ProfileWorkerResult(outcome)?.compiledRuntimeBytes { return bytes }
            reason = outcome.failureReason(oomKilled: false, limit: 0)
        } catch {
            reason = "\(error)"
        }
        FileHandle.standardError.write(Data("warning: could not measure what compiling \(model) holds (\(reason)); no resident memory is predicted\n".utf8))
        return nil
    }

    func run() throws {
        let (p, path) = try Self.loadPredictor(predictor, stage: stage)
        var kernels: [KernelInfo] = []
        var report: PredictionReport = try {
            let graph = try ModelSource.load(model)
            let program = try Program(lowering: graph, batch: batch)
            let cost = try CostModel.analyze(program: program)
            if stage == .train {
                // The trainer's buffers are allocated (their sizes are its memory); nothing runs.
                return try PredictionReport(model: model, trainer: try Trainer(graph: graph, batch: batch), threads: threads,
                                            flops: cost.flops, predictor: p, predictorPath: path)
            }
            let plan = try Plan.compile(program, options: CompileOptions(threads: threads))
            kernels = plan.kernelInfo
            return try PredictionReport(model: model, plan: plan, batch: batch, flops: cost.flops, predictor: p, predictorPath: path)
        }()
        // The graph and the plan are gone by now, so the child's compilation does not add to
        // this process's memory.
        if stage == .inference, let runtime = p.runtimeMemory, let compiled = compiledRuntimeBytes() {
            report.addResident(runtime, kernels: kernels, compiledBytes: compiled)
        }
        if !report.machineMatches {
            FileHandle.standardError.write(Data("warning: \(path) was fitted on another machine (\(p.machine.cpuModel), oneDNN \(p.machine.onednnVersion) \(p.machine.onednnISA), fingerprint \(p.machine.fingerprint)); this one is \(MachineInfo.current().fingerprint). Its predictions describe that machine.\n".utf8))
        }
        if report.extrapolated {
            FileHandle.standardError.write(Data("warning: batch \(batch) / \(threads) thread(s) lie outside the predictor's training grid (batch \(p.batches.map(String.init).joined(separator: ",")), threads \(p.threads.map(String.init).joined(separator: ","))); see the README for the error measured there\n".utf8))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.render())
        }
    }
}

/// `analyze --predicted`: each task's demand at each of its widths from the predictor, without
/// running anything. The WCET is the predicted latency inflated by the predictor's
/// cross-validated 99th-percentile relative error; the longest non-preemptive region is the
/// longest predicted kernel inflated alike; the regions are the plan's kernels.
func predictedDemands(_ set: TaskSet, predictorPath: String?, acceptOtherMachine: Bool, log: (String) -> Void) throws -> [[TaskDemand]] {
    let (predictor, path) = try Predict.loadPredictor(predictorPath)
    guard let validation = predictor.validation else {
        throw ValidationError("\(path) has no cross-validated error (it was fitted with --folds 0 or on too few networks); --predicted needs it to bound the WCET")
    }
    let here = MachineInfo.current()
    if here.fingerprint != predictor.machine.fingerprint {
        let text = "\(path) was fitted on another machine (\(predictor.machine.cpuModel), oneDNN \(predictor.machine.onednnVersion) \(predictor.machine.onednnISA), fingerprint \(predictor.machine.fingerprint)); this one is \(here.fingerprint)"
        guard acceptOtherMachine else {
            throw ValidationError("\(text). A verdict from it would describe that machine; pass --force to analyse with it anyway")
        }
        log("warning: \(text); the verdict describes that machine")
    }
    let inflation = 1 + validation.p99RelativeError
    log(String(format: "predicting with %@ (cross-validated p99 relative error %.1f%%: every prediction × %.3f):", path,
               validation.p99RelativeError * 100, inflation))
    return try set.tasks.enumerated().map { i, task in
        if let declared = TaskDemand.declaredPerWidth(task) { return declared }
        guard task.model != nil else {
            throw TaskSetError(path: "tasks[\(i)].model", message: "--predicted needs a model (or a declared wcet) for every task")
        }
        return try (task.widths ?? [task.width ?? 1]).map { width in
            var spec = task
            if task.widths != nil { spec.width = width; spec.widths = nil }
            let graph = try loadTaskModel(spec)
            let plan = try Plan.compile(graph, batch: task.batch, options: CompileOptions(threads: task.threads))
            let kernels = try predictor.kernelMilliseconds(plan.kernelInfo, threads: task.threads)
            let latency = predictor.milliseconds(composing: kernels)
            let wcet = Int64((latency * inflation * 1e6).rounded(.up))
            let npr = Int64(((kernels.max() ?? latency) * inflation * 1e6).rounded(.up))
            let label = task.widths.map { _ in "\(task.name)@\(width)" } ?? task.name
            log(String(format: "  %@: predicted %.3f ms → WCET %.3f ms, longest kernel %.3f ms (%d kernels)%@", label, latency,
                       Double(wcet) / 1e6, Double(npr) / 1e6, plan.kernelCount,
                       predictor.batches.contains(task.batch) && predictor.threads.contains(task.threads) ? "" : "; outside the training grid"))
            return TaskDemand(wcet: wcet, npr: npr, regions: plan.kernelCount)
        }
    }
}
