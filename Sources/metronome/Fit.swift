import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeModels

/// `metronome fit`: a kernel-level latency predictor from profiles.
struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit a latency predictor on profiles (`metronome profile --layers`).",
        discussion: """
            Fits one gradient-boosted tree ensemble (XGBoost) per kernel family — dense, 1×1, \\
            depthwise and grouped convolutions, inner products, pooling, element-wise, concat, \\
            reorders, Swift kernels, copies — on each kernel's shapes, geometry, post-ops, \\
            layouts, oneDNN implementation, FLOPs, bytes and thread count; a network's latency \\
            is the sum of its kernels' predictions plus the measured per-kernel dispatch \\
            overhead. A FLOPs-only linear baseline is fitted beside it. The predictor is then \\
            cross-validated (random split over networks, --folds folds) and the result, \\
            including the 99th-percentile relative error that `analyze --predicted` inflates \\
            by, is stored in the JSON with the machine the profiles were measured on. Profiles \\
            from different machines are refused unless --mix-machines.

            With --stage train it learns training steps instead, from the rows of \
            `profile --stage train --layers`: each step of the trainer's program (forward and \
            backward) is a kernel, plus the gradient zeroing and the optimizer's update. Its \
            default file is train-predictor.json, which `predict --stage train` reads.
            """)

    @OptionGroup var inputs: ProfileInputs
    @OptionGroup var trees: TreeOptions
    @Option(help: "The predictor JSON to write (default: predictor.json, or train-predictor.json with --stage train, in the cache directory, where `predict` looks).")
    var out: String?
    @Option(help: "Folds of the cross-validation stored with the predictor (0 skips it).") var folds = 5
    @Flag(help: "Overwrite --out.") var force = false

    static func defaultPath(stage: ProfileStage) -> String {
        PretrainedWeights.cacheDirectory.appendingPathComponent(stage == .train ? "train-predictor.json" : "predictor.json").path
    }

    func validate() throws {
        guard folds == 0 || folds >= 2 else { throw ValidationError("--folds must be 0 or at least 2") }
        let path = out ?? Self.defaultPath(stage: inputs.stage)
        if !force && FileManager.default.fileExists(atPath: path) {
            throw ValidationError("\(path) already exists; choose another --out or pass --force")
        }
    }

    func run() throws {
        let configurations = try inputs.configurations()
        // One XGBoost thread: the data are small, and its OpenMP team spins badly when the
        // cores are shared (a fit took 6× the CPU time beside a compiler).
        let threads = 1
        var predictor = try LatencyPredictor.fit(configurations, parameters: trees.parameters, threads: threads)
        let networks = Set(configurations.map(\.model.model)).count
        if folds > 0 && networks >= folds {
            var bar: ProgressBar?
            let evaluation = try PredictorEvaluation.run(configurations, split: .random, folds: folds, parameters: trees.parameters, threads: threads) { done, total in
                if bar == nil { bar = ProgressBar(total: total) }
                bar?.advance("cross-validation fold \(done) of \(total)")
            }
            let errors = evaluation.predictions.map { abs($0.predictedMs - $0.measuredMs) / $0.measuredMs }.sorted()
            let all = evaluation.metrics.first { $0.method == "predictor" && $0.subset == "all" }
            predictor.validation = LatencyPredictor.Validation(
                folds: folds, networks: networks, within10: all?.within10 ?? 0, mape: all?.mape ?? 0,
                p99RelativeError: errors[min(errors.count - 1, Int((0.99 * Double(errors.count)).rounded(.up)) - 1)])
        } else if folds > 0 {
            FileHandle.standardError.write(Data("warning: \(networks) network(s) are too few for \(folds)-fold cross-validation; the predictor has no validated error, and `analyze --predicted` will refuse it\n".utf8))
        }
        let path = out ?? Self.defaultPath(stage: inputs.stage)
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        do { try predictor.encoded().write(to: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("cannot write \(path): \(error.localizedDescription)")
        }
        var table = TextTable([.left("KERNEL FAMILY"), .right("ROWS"), .left("MODEL"), .right("IMPLEMENTATIONS")])
        for (name, family) in predictor.families.sorted(by: { $0.key < $1.key }) {
            table.append([name, String(family.rows), family.trees == nil ? "median cost (too few rows)" : "boosted trees",
                          String(family.implementations.count)])
        }
        print("fitted on \(predictor.trainingConfigurations) \(predictor.stageName == "train" ? "training-step " : "")configurations (\(networks) networks, \(predictor.trainingKernels) kernels), batch \(predictor.batches.map(String.init).joined(separator: ",")), threads \(predictor.threads.map(String.init).joined(separator: ","))")
        print("machine \(predictor.machine.fingerprint): \(predictor.machine.cpuModel), oneDNN \(predictor.machine.onednnVersion) \(predictor.machine.onednnISA)")
        print(table.render())
        print(String(format: "latency ≈ %.4f × Σ kernel predictions + %.5f ms per kernel (dispatch overhead)", predictor.sumScale,
                     predictor.overheadPerKernelMs))
        if let r = predictor.runtimeMemory {
            func size(_ bytes: Double) -> String {
                abs(bytes) >= 1_048_576 ? String(format: "%.2f MiB", bytes / 1_048_576) : String(format: "%.0f KiB", bytes / 1024)
            }
            print("memory ≈ plan + what compiling leaves resident (measured before anything runs) \(r.constantBytes < 0 ? "−" : "+") \(size(abs(r.constantBytes)))"
                  + " \(r.bytesPerExtraThread < 0 ? "−" : "+") \(size(abs(r.bytesPerExtraThread))) per extra thread"
                  + " + bytes once per process per implementation used (fitted on \(r.configurations) configurations):")
            let once = r.onceBytesPerImplementation.filter { $0.value >= 1024 }.sorted { $0.key < $1.key }
                .map { "\($0.key) \(size($0.value))" }
            print("  " + (once.isEmpty ? "no implementation holds 1 KiB or more" : once.joined(separator: ", "))
                  + "; every other implementation (and any never profiled) nothing")
        } else if predictor.stageName == "inference" {
            print("no resident-memory term: the profiles have no compiled_runtime_bytes (profiled before it was recorded, or without memory columns); profile again for `predict`'s resident_bytes")
        }
        if let v = predictor.validation {
            print(String(format: "cross-validated (%d folds): %.1f%% within ±10%%, MAPE %.1f%%, p99 relative error %.1f%%",
                         v.folds, v.within10 * 100, v.mape * 100, v.p99RelativeError * 100))
        }
        print("wrote \(path)")
    }
}
