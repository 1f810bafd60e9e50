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
    @Flag(help: "Print one JSON object on stdout instead of a table.") var json = false
    @Flag(help: "Also time each compiled kernel and print a per-kernel profile.") var layers = false
    @Option(help: "Write one per-kernel run as a Chrome trace JSON to this file (implies --layers).") var trace: String?
    @Flag(help: "Overwrite the --trace file if it exists.") var force = false

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
        let compileStart = MonotonicClock.now()
        let plan = try Plan.compile(graph, batch: batch,
                                    options: CompileOptions(threads: threads, backend: Backend(rawValue: backend)!))
        let compileMs = Double(MonotonicClock.now() - compileStart) / 1e6
        let executor = try Executor(plan: plan, cores: coreList)
        var generator = SplitMix64(seed: 42)
        let buffers = PlanBuffers(plan: plan, generator: &generator)
        let samples = try executor.timedRuns(runs, warmup: warmup, on: buffers)
        let stats = try LatencyStatistics(samples)
        let imagesPerSecond = Double(batch) * 1000 / stats.median
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
                "backend": backend, "cores": coreList ?? [],
                "min_ms": stats.minimum, "median_ms": stats.median, "p90_ms": stats.p90, "p99_ms": stats.p99,
                "max_ms": stats.maximum, "mean_ms": stats.mean, "images_per_s": imagesPerSecond,
                "compile_ms": compileMs, "arena_bytes": plan.arenaBytes, "weight_bytes": plan.weightBytes,
                "onednn_kernels": plan.oneDNNKernelCount, "reference_kernels": plan.referenceKernelCount,
            ]
            if let layerReport {
                let encoded = try JSONEncoder().encode(layerReport)
                object["layers"] = try JSONSerialization.jsonObject(with: encoded)
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(model): batch \(batch), \(threads) thread(s)\(coreList.map { " on cores \($0)" } ?? ""), \(runs) runs after \(warmup) warm-up")
            print("  compile \(fmt(compileMs)) ms; arena \(mib(plan.arenaBytes)) MiB (unplanned \(mib(plan.unplannedActivationBytes)) MiB); weights \(mib(plan.weightBytes)) MiB")
            print("  kernels: \(plan.oneDNNKernelCount) oneDNN, \(plan.referenceKernelCount) reference")
            print("  latency ms: min \(fmt(stats.minimum))  median \(fmt(stats.median))  p90 \(fmt(stats.p90))  p99 \(fmt(stats.p99))  max \(fmt(stats.maximum))")
            print("  throughput: \(fmt(imagesPerSecond)) images/s")
            if let layerReport { print(""); print(layerReport.render(), terminator: "") }
            if let trace { print("wrote \(trace)") }
        }
    }
}

func fmt(_ v: Double) -> String { String(format: "%.3f", v) }
func mib(_ bytes: Int) -> String { String(format: "%.2f", Double(bytes) / 1_048_576) }
