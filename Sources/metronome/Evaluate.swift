import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis

extension PredictorEvaluation.Split: ExpressibleByArgument {}

/// `metronome evaluate`: cross-validated accuracy of the kernel-level predictor and the FLOPs
/// baseline on a profile.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cross-validate latency predictors on a profile (predictor vs FLOPs baseline).",
        discussion: """
            Holds networks out of fitting and predicts them: --split random makes --folds folds \
            over networks; family leaves each family (base model) out in turn; amount leaves \
            each pruning amount out. Prints, for the predictor and the FLOPs-only linear \
            baseline, the share within ±5% and ±10%, MAPE, RMSPE and Spearman's rho, overall, \
            per held-out group, per thread count and per batch size. Writes \
            DIR/predictions.csv, DIR/metrics.csv and DIR/scatter.svg (predicted against \
            measured, one colour per family). With --test FILE the predictor is fitted on all \
            of PROFILES and tested on FILE instead (--split test): batch sizes, thread counts or \
            networks outside the training grid.
            """)

    @OptionGroup var inputs: ProfileInputs
    @OptionGroup var trees: TreeOptions
    @Option(help: "random, family or amount (test with --test).") var split: PredictorEvaluation.Split = .random
    @Option(help: "A profile to test on after fitting on all of PROFILES (implies --split test).") var test: String?
    @Option(help: "Folds of the random split.") var folds = 5
    @Option(help: "Seed of the random split.") var seed: UInt64 = 1
    @Option(help: "Output directory.") var out: String
    @Flag(help: "Overwrite files in --out.") var force = false
    @Flag(help: "Print the metrics as JSON.") var json = false

    func validate() throws {
        guard folds >= 2 else { throw ValidationError("--folds must be at least 2") }
        if split == .test && test == nil { throw ValidationError("--split test needs --test FILE") }
        if let test, !FileManager.default.fileExists(atPath: test) { throw ValidationError("\(test) does not exist") }
        if !force {
            for name in ["predictions.csv", "metrics.csv", "scatter.svg", "kernels.csv"] {
                let path = (out as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: path) {
                    throw ValidationError("\(path) already exists; choose another --out or pass --force")
                }
            }
        }
    }

    func run() throws {
        let configurations = try inputs.configurations()
        var bar: ProgressBar?
        var evaluation: PredictorEvaluation
        do {
            if let test {
                var testInputs = inputs
                testInputs.profiles = [test]
                let testConfigurations = try testInputs.configurations()
                let machines = Set((configurations + testConfigurations).map(\.model.machine.fingerprint))
                if machines.count > 1 && !inputs.mixMachines {
                    throw ValidationError("\(test) comes from another machine than the training profiles; pass --mix-machines to test across machines")
                }
                evaluation = try PredictorEvaluation.holdout(train: configurations, test: testConfigurations, parameters: trees.parameters,
                                                             threads: 1)
            } else {
                evaluation = try PredictorEvaluation.run(configurations, split: split, folds: folds, seed: seed, parameters: trees.parameters,
                                                     threads: 1) { done, total in
                if bar == nil { bar = ProgressBar(total: total) }
                bar?.advance("fold \(done) of \(total)")
            }
            }
        } catch let error as PredictorEvaluation.Failure {
            throw ValidationError(error.description)
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var predictions = CSV.line(["model", "family", "amount", "batch", "threads", "fold", "measured_ms", "predicted_ms", "baseline_ms"])
        for p in evaluation.predictions {
            predictions += CSV.line([p.model, p.family, p.amount, String(p.batch), String(p.threads), p.fold,
                                     String(format: "%.6f", p.measuredMs), String(format: "%.6f", p.predictedMs),
                                     String(format: "%.6f", p.baselineMs)])
        }
        var metrics = CSV.line(["method", "subset", "count", "within_5", "within_10", "mape", "rmspe", "spearman"])
        for m in evaluation.metrics {
            metrics += CSV.line([m.method, m.subset, String(m.count)] + [m.within5, m.within10, m.mape, m.rmspe, m.spearman].map { String(format: "%.4f", $0) })
        }
        let svg = ScatterPlot.svg([
            ("kernel-level predictor (\(evaluation.split.rawValue) split)", evaluation.predictions.map {
                ScatterPlot.Point(measured: $0.measuredMs, predicted: $0.predictedMs, group: $0.family, label: "\($0.model) b\($0.batch) t\($0.threads)")
            }),
            ("FLOPs-only linear baseline", evaluation.predictions.map {
                ScatterPlot.Point(measured: $0.measuredMs, predicted: $0.baselineMs, group: $0.family, label: "\($0.model) b\($0.batch) t\($0.threads)")
            }),
        ])
        var kernels = CSV.line(["model", "batch", "threads", "kernel", "kernel_family", "measured_ms", "predicted_ms"])
        for k in evaluation.kernels {
            kernels += CSV.line([k.model, String(k.batch), String(k.threads), k.kernel, k.kernelFamily,
                                 String(format: "%.6f", k.measuredMs), String(format: "%.6f", k.predictedMs)])
        }
        for (name, text) in [("predictions.csv", predictions), ("metrics.csv", metrics), ("scatter.svg", svg), ("kernels.csv", kernels)] {
            let path = (out as NSString).appendingPathComponent(name)
            do { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) } catch {
                throw ValidationError("cannot write \(path): \(error.localizedDescription)")
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(evaluation.metrics), as: UTF8.self))
            return
        }
        print("\(evaluation.split.rawValue) split: \(evaluation.folds) folds over \(evaluation.networks) networks, \(evaluation.configurations) configurations")
        print(Self.render(evaluation.metrics))
        print("wrote \(out)/predictions.csv, metrics.csv, kernels.csv, scatter.svg")
    }

    static func render(_ metrics: [PredictorEvaluation.Metrics]) -> String {
        var table = TextTable([.left("SUBSET"), .left("METHOD"), .right("N"), .right("±5%"), .right("±10%"), .right("MAPE"),
                               .right("RMSPE"), .right("SPEARMAN")])
        for m in metrics {
            table.append([m.subset, m.method, String(m.count), String(format: "%.1f%%", m.within5 * 100),
                          String(format: "%.1f%%", m.within10 * 100), String(format: "%.1f%%", m.mape * 100),
                          String(format: "%.1f%%", m.rmspe * 100), String(format: "%.3f", m.spearman)])
        }
        return table.render()
    }
}
