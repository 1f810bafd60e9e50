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
            baseline, the share within ±2%, ±5% and ±10%, MAPE, RMSPE and Spearman's rho, \
            overall, per held-out group, per thread count and per batch size; and for memory, \
            the plan alone (memory_plan) and the plan with the runtime's bytes fitted on the \
            training folds (memory_plan_runtime) against the measured anonymous memory. Writes \
            DIR/predictions.csv, DIR/metrics.csv and DIR/scatter.svg (predicted against \
            measured, one colour per family). With --test FILE the predictor is fitted on all \
            of PROFILES and tested on FILE instead (--split test): batch sizes, thread counts or \
            networks outside the training grid. --train-also FILE adds profiles to every \
            training set without testing them: sampled architectures (`metronome dataset \
            --models sampled:N`), so that a held-out family's kernels are not outside \
            everything the trees saw.

            With --retest SECOND, nothing is fitted: SECOND, another profile of the same \
            configurations (run later, e.g. `metronome profile … --out SECOND`), is scored as \
            if it predicted the first, with the same metrics (method retest, and per kernel \
            family with --layers profiles). That is the measurement's own repeatability, the \
            ceiling any predictor is held to on this machine. predictions.csv then has \
            first_ms and second_ms.
            """)

    @OptionGroup var inputs: ProfileInputs
    @OptionGroup var trees: TreeOptions
    @Option(help: "random, family or amount (test with --test).") var split: PredictorEvaluation.Split = .random
    @Option(help: "A profile to test on after fitting on all of PROFILES (implies --split test).") var test: String?
    @Option(help: "A second profile of the same configurations: report how well it agrees with the first (implies --split retest; nothing is fitted).") var retest: String?
    @Option(name: .customLong("train-also"), help: ArgumentHelp(
        "A profile added to every fold's training set and never tested (repeatable): sampled architectures (`dataset --models sampled:N`) that belong to no family.",
        valueName: "profile.csv"))
    var trainAlso: [String] = []
    @Option(help: "Folds of the random split.") var folds = 5
    @Option(help: "Seed of the random split.") var seed: UInt64 = 1
    @Option(help: "Output directory.") var out: String
    @Flag(help: "Overwrite files in --out.") var force = false
    @Flag(help: "Print the metrics as JSON.") var json = false

    func validate() throws {
        guard folds >= 2 else { throw ValidationError("--folds must be at least 2") }
        if split == .test && test == nil { throw ValidationError("--split test needs --test FILE") }
        if split == .retest && retest == nil { throw ValidationError("--split retest needs --retest SECOND.csv") }
        if test != nil && retest != nil { throw ValidationError("--test and --retest cannot be combined") }
        if retest != nil && !trainAlso.isEmpty { throw ValidationError("--train-also needs a predictor; --retest fits none") }
        for file in [test, retest].compactMap({ $0 }) + trainAlso where !FileManager.default.fileExists(atPath: file) {
            throw ValidationError("\(file) does not exist")
        }
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
        if let retest {
            try write(Self.retestEvaluation(first: inputs, second: retest))
            return
        }
        let configurations = try inputs.configurations()
        let extra = trainAlso.isEmpty ? []
            : try inputs.configurations(of: trainAlso, beside: configurations, purpose: "train across machines")
        var bar: ProgressBar?
        var evaluation: PredictorEvaluation
        do {
            if let test {
                let testConfigurations = try inputs.configurations(of: [test], beside: configurations, purpose: "test across machines")
                evaluation = try PredictorEvaluation.holdout(train: configurations + extra, test: testConfigurations, parameters: trees.parameters,
                                                             threads: 1)
            } else {
                evaluation = try PredictorEvaluation.run(configurations, split: split, folds: folds, seed: seed, alwaysTrain: extra,
                                                         parameters: trees.parameters,
                                                     threads: 1) { done, total in
                if bar == nil { bar = ProgressBar(total: total) }
                bar?.advance("fold \(done) of \(total)")
            }
            }
        } catch let error as PredictorEvaluation.Failure {
            throw ValidationError(error.description)
        }
        try write(evaluation)
    }

    /// The two profiles read and paired; machines are checked as for fitting.
    static func retestEvaluation(first: ProfileInputs, second: String) throws -> PredictorEvaluation {
        var records: [ProfileRecord] = [], again: [ProfileRecord] = []
        do {
            for p in first.profiles { records += try ProfileRecord.read(path: p) }
            again = try ProfileRecord.read(path: second)
        } catch { throw ValidationError("\(error)") }
        let machines = Set((records + again).map(\.machine.fingerprint))
        if machines.count > 1 && !first.mixMachines {
            throw ValidationError("\(second) comes from another machine than \(first.profiles.joined(separator: ", ")); a retest compares two measurements on one machine (pass --mix-machines to compare machines)")
        }
        do { return try PredictorEvaluation.retest(first: records, second: again) } catch let error as PredictorEvaluation.Failure {
            throw ValidationError(error.description)
        }
    }

    func write(_ evaluation: PredictorEvaluation) throws {
        let isRetest = evaluation.split == .retest
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var predictions = CSV.line(["model", "family", "amount", "batch", "threads", "fold"]
                                   + (isRetest ? ["first_ms", "second_ms"]
                                      : ["measured_ms", "predicted_ms", "baseline_ms", "measured_bytes", "planned_bytes", "runtime_bytes"]))
        for p in evaluation.predictions {
            let memory = isRetest ? [] : [p.measuredBytes, p.plannedBytes, p.runtimeBytes].map { $0.map(String.init) ?? "" }
            predictions += CSV.line([p.model, p.family, p.amount, String(p.batch), String(p.threads), p.fold]
                                    + (isRetest ? [p.measuredMs, p.predictedMs] : [p.measuredMs, p.predictedMs, p.baselineMs])
                                        .map { String(format: "%.6f", $0) } + memory)
        }
        var metrics = CSV.line(["method", "subset", "count", "within_2", "within_5", "within_10", "mape", "rmspe", "spearman"])
        for m in evaluation.metrics {
            metrics += CSV.line([m.method, m.subset, String(m.count)]
                                + [m.within2, m.within5, m.within10, m.mape, m.rmspe, m.spearman].map { String(format: "%.4f", $0) })
        }
        let svg = isRetest ? ScatterPlot.svg([
            ("second measurement against the first", evaluation.predictions.map {
                ScatterPlot.Point(measured: $0.measuredMs, predicted: $0.predictedMs, group: $0.family, label: "\($0.model) b\($0.batch) t\($0.threads)")
            }),
        ], axes: ("first", "second")) : ScatterPlot.svg([
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
        if isRetest {
            print("retest: \(evaluation.configurations) configurations of \(evaluation.networks) networks measured twice")
        } else {
            print("\(evaluation.split.rawValue) split: \(evaluation.folds) folds over \(evaluation.networks) networks, \(evaluation.configurations) configurations")
        }
        print(Self.render(evaluation.metrics))
        print("wrote \(out)/predictions.csv, metrics.csv, kernels.csv, scatter.svg")
    }

    static func render(_ metrics: [PredictorEvaluation.Metrics]) -> String {
        var table = TextTable([.left("SUBSET"), .left("METHOD"), .right("N"), .right("±2%"), .right("±5%"), .right("±10%"),
                               .right("MAPE"), .right("RMSPE"), .right("SPEARMAN")])
        for m in metrics {
            table.append([m.subset, m.method, String(m.count), String(format: "%.1f%%", m.within2 * 100), String(format: "%.1f%%", m.within5 * 100),
                          String(format: "%.1f%%", m.within10 * 100), String(format: "%.1f%%", m.mape * 100),
                          String(format: "%.1f%%", m.rmspe * 100), String(format: "%.3f", m.spearman)])
        }
        return table.render()
    }
}
