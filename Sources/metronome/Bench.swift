import ArgumentParser
import Foundation
import Metronome
import MetronomeModels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model's inference latency.",
        discussion: """
            Compiles MODEL for the given batch and thread count, runs warm-up iterations, then \
            times each run on the monotonic clock. Prints min, median, p90, p99 and max latency \
            in milliseconds and the throughput in images per second.

            --layers then times every compiled kernel over another --runs runs (the stream is \
            waited on between kernels) and prints, per kernel, the ONNX nodes fused into it, \
            its oneDNN primitive and implementation name (e.g. brgconv:avx512_core; ref:any is \
            oneDNN's slow reference path), shapes, median time and share of the total. \
            --trace FILE writes one of those runs as a Chrome trace (chrome://tracing, \
            ui.perfetto.dev).
            """
    )

    @Argument(help: "A zoo model name (see `metronome models`) or an .onnx file.")
    var model: String

    @Option(help: "Images per inference.") var batch = 1
    @Option(help: "Threads per inference (the OpenMP team size).") var threads = 1
    @Option(help: "Cores to pin the threads to, e.g. 0,1 or 2-3.") var cores: String?
    @Option(help: "Timed runs.") var runs = 50
    @Option(help: "Untimed warm-up runs.") var warmup = 5
    @Option(help: "Kernel backend: onednn or reference.") var backend = "onednn"
    @Option(help: "Precision of the convolutions: fp32, bf16 or int8 (int8: a quantized QDQ model, see `metronome quantize`; reduced precision also reports its fidelity against fp32).")
    var precision: Precision = .fp32
    @Flag(help: "Print one JSON object on stdout instead of a table.") var json = false
    @Flag(help: "Also time each compiled kernel and print a per-kernel profile.") var layers = false
    @Option(help: "Write one per-kernel run as a Chrome trace JSON to this file (implies --layers).") var trace: String?
    @Flag(help: "Overwrite the --trace file if it exists.") var force = false
    @OptionGroup var branches: BranchOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard Backend(rawValue: backend) != nil else { throw ValidationError("--backend must be onednn or reference") }
        if let trace, !force, FileManager.default.fileExists(atPath: trace) {
            throw ValidationError("\(trace) already exists; choose another --trace or pass --force")
        }
    }

    func run() throws {
        let coreList = try cores.map(Affinity.parse)
        if let coreList { try Affinity.validate(coreList) }
        let graph = try ModelSource.load(model)
        if let note = graph.precisionNote(precision, model: model) { FileHandle.standardError.write(Data(note.utf8)) }
        let compileStart = MonotonicClock.now()
        if precision != .fp32 && backend != "onednn" { throw ValidationError("--precision \(precision.rawValue) needs --backend onednn") }
        let deviceCores = try branches.deviceCores(for: graph)
        if deviceCores != nil && (layers || trace != nil) {
            throw ValidationError("--layers and --trace time kernels one after another; leave out --devices")
        }
        let plan = try Plan.compile(graph, batch: batch,
                                    options: CompileOptions(threads: threads, backend: Backend(rawValue: backend)!, precision: precision,
                                                            devices: deviceCores))
        let compileMs = Double(MonotonicClock.now() - compileStart) / 1e6
        let executor = try Executor(plan: plan, cores: coreList)
        var generator = SplitMix64(seed: 42)
        let buffers = PlanBuffers(plan: plan, generator: &generator)
        let samples = try executor.timedRuns(runs, warmup: warmup, on: buffers)
        let stats = try LatencyStatistics(samples)
        let imagesPerSecond = Double(batch) * 1000 / stats.median
        // Reduced precision: the same inputs through the fp32 plan, compared output by output.
        var fidelity: Fidelity?
        if precision != .fp32 {
            let reference = try Plan.compile(graph, batch: batch, options: CompileOptions(threads: threads))
            fidelity = try Fidelity(plan: plan, reference: reference, buffers: buffers, batch: batch)
        }
        var layerReport: LayerReport?
        if layers || trace != nil {
            let perKernel = try executor.kernelTimes(runs: runs, warmup: 1, on: buffers)
            layerReport = try LayerReport(plan: plan, samples: perKernel)
            if let trace {
                try KernelTrace.write(plan: plan, durationsMs: perKernel.map { $0[0] }, model: model,
                                      to: URL(fileURLWithPath: trace), overwrite: force)
            }
        }
        if json {
            var object: [String: Any] = [
                "model": model, "batch": batch, "threads": threads, "runs": runs, "warmup": warmup,
                "backend": backend, "cores": coreList ?? [], "devices": deviceCores?.description ?? "",
                "min_ms": stats.minimum, "median_ms": stats.median, "p90_ms": stats.p90, "p99_ms": stats.p99,
                "max_ms": stats.maximum, "mean_ms": stats.mean, "images_per_s": imagesPerSecond,
                "compile_ms": compileMs, "arena_bytes": plan.arenaBytes, "weight_bytes": plan.weightBytes,
                "onednn_kernels": plan.oneDNNKernelCount, "reference_kernels": plan.referenceKernelCount,
            ]
            object["precision"] = precision.rawValue
            if let layerReport {
                let encoded = try JSONEncoder().encode(layerReport)
                object["layers"] = try JSONSerialization.jsonObject(with: encoded)
            }
            if let fidelity {
                object["fidelity"] = ["max_relative_error": fidelity.maxRelativeError, "mean_relative_error": fidelity.meanRelativeError,
                                      "top1_agreement": fidelity.top1Agreement, "images": fidelity.images]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let placement = deviceCores.map { "branch-parallel on \($0)" } ?? "\(threads) thread(s)\(coreList.map { " on cores \($0)" } ?? "")"
            print("\(model): batch \(batch), \(placement), \(runs) runs after \(warmup) warm-up\(precision == .fp32 ? "" : ", \(precision.rawValue)")")
            print("  compile \(fmt(compileMs)) ms; arena \(mib(plan.arenaBytes)) MiB (unplanned \(mib(plan.unplannedActivationBytes)) MiB); weights \(mib(plan.weightBytes)) MiB")
            print("  kernels: \(plan.oneDNNKernelCount) oneDNN, \(plan.referenceKernelCount) reference")
            print("  latency ms: min \(fmt(stats.minimum))  median \(fmt(stats.median))  p90 \(fmt(stats.p90))  p99 \(fmt(stats.p99))  max \(fmt(stats.maximum))")
            print("  throughput: \(fmt(imagesPerSecond)) images/s")
            if let fidelity {
                print("  precision \(precision.rawValue) against fp32 on the same inputs: " + fidelity.text)
            }
            if let layerReport { print(""); print(layerReport.render(), terminator: "") }
            if let trace { print("wrote \(trace)") }
        }
    }
}

func fmt(_ v: Double) -> String { String(format: "%.3f", v) }
func mib(_ bytes: Int) -> String { String(format: "%.2f", Double(bytes) / 1_048_576) }

extension Precision: ExpressibleByArgument {}

/// How far a reduced-precision plan's outputs are from the fp32 plan's on the same inputs:
/// the largest and mean |diff| / max |fp32| over the outputs, and how often the first output's
/// arg-max per image agrees.
struct Fidelity {
    var maxRelativeError: Double
    var meanRelativeError: Double
    var top1Agreement: Double
    var images: Int

    init(plan: Plan, reference: Plan, buffers: PlanBuffers, batch: Int) throws {
        let executor = try Executor(plan: plan), refExecutor = try Executor(plan: reference)
        try executor.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers)
        let mine = buffers.outputs.map { Array($0) }
        try refExecutor.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers)
        let ref = buffers.outputs.map { Array($0) }
        var worst = 0.0, sum = 0.0, count = 0
        for (a, r) in zip(mine, ref) {
            let scale = Double(r.map { abs($0) }.max() ?? 0)
            for (x, y) in zip(a, r) {
                let e = Double(abs(x - y)) / max(scale, 1e-30)
                worst = max(worst, e)
                sum += e
                count += 1
            }
        }
        maxRelativeError = worst
        meanRelativeError = count > 0 ? sum / Double(count) : 0
        let per = (ref.first?.count ?? 0) / max(batch, 1)
        var agree = 0
        for i in 0..<batch where per > 0 {
            let a = mine[0][(i * per)..<((i + 1) * per)], r = ref[0][(i * per)..<((i + 1) * per)]
            if a.indices.max(by: { a[$0] < a[$1] }) == r.indices.max(by: { r[$0] < r[$1] }) { agree += 1 }
        }
        top1Agreement = batch > 0 ? Double(agree) / Double(batch) : 1
        images = batch
    }

    var text: String {
        String(format: "max relative error %.2e, mean %.2e; top-1 agreement %.0f%% of %d image(s)",
               maxRelativeError, meanRelativeError, top1Agreement * 100, images)
    }
}
