import Foundation
import Metronome

/// Cross-validated accuracy of latency predictors on a profile: predictions for networks held
/// out of fitting, against what was measured, for the kernel-level predictor and the
/// FLOPs-only linear baseline, with the model-level metrics the literature reports.
public struct PredictorEvaluation: Codable, Sendable {
    /// How networks are held out.
    public enum Split: String, Codable, CaseIterable, Sendable {
        /// K folds over networks (every configuration of a network in the same fold).
        case random
        /// Leave one family out: fit on all other families, test on this one, for each family.
        case family
        /// Leave one pruning amount out.
        case amount
        /// Fit on one set of profiles, test on another (``holdout(train:test:)``): batch sizes,
        /// thread counts or networks outside the training grid.
        case test
        /// No predictor: a second profile of the same configurations in the place of the
        /// predictions (``retest(first:second:)``), the ceiling any predictor is held to.
        case retest
    }

    public struct Prediction: Codable, Sendable {
        public var model: String
        public var family: String
        public var amount: String
        public var batch: Int
        public var threads: Int
        public var fold: String
        public var measuredMs: Double
        public var predictedMs: Double
        public var baselineMs: Double
        /// The measured anonymous memory of the configuration's process, when profiled.
        public var measuredBytes: Int? = nil
        /// The compiled plan's bytes (weights, arena, scratchpad, inputs and outputs).
        public var plannedBytes: Int? = nil
        /// The runtime's bytes beyond the plan (``RuntimeMemory``), as fitted on the other folds.
        public var runtimeBytes: Int? = nil

        enum CodingKeys: String, CodingKey {
            case model, family, amount, batch, threads, fold, measuredMs = "measured_ms", predictedMs = "predicted_ms"
            case baselineMs = "baseline_ms", measuredBytes = "measured_bytes", plannedBytes = "planned_bytes"
            case runtimeBytes = "runtime_bytes"
        }

        /// Sets the memory fields of a held-out configuration `c` from its profile row and the
        /// predictor's runtime memory.
        mutating func addMemory(_ c: ProfiledConfiguration, _ predictor: LatencyPredictor) {
            measuredBytes = c.model.anonymousRSSBytes
            plannedBytes = c.model.plannedBytes
            runtimeBytes = c.model.compiledRuntimeBytes.flatMap {
                predictor.runtimeMemory?.bytes(kernels: c.kernels, threads: c.model.threads, compiledBytes: $0)
            }
        }
    }

    /// One held-out kernel: its measured and predicted time.
    public struct KernelPrediction: Codable, Sendable {
        public var model: String
        public var batch: Int
        public var threads: Int
        public var kernel: String
        public var kernelFamily: String
        public var measuredMs: Double
        public var predictedMs: Double

        enum CodingKeys: String, CodingKey {
            case model, batch, threads, kernel, kernelFamily = "kernel_family", measuredMs = "measured_ms", predictedMs = "predicted_ms"
        }
    }

    public struct Metrics: Codable, Sendable, Equatable {
        public var method: String
        /// `all`, or the held-out family / amount / thread count the row is restricted to.
        public var subset: String
        public var count: Int
        public var within2: Double
        public var within5: Double
        public var within10: Double
        public var mape: Double
        public var rmspe: Double
        public var spearman: Double

        enum CodingKeys: String, CodingKey {
            case method, subset, count, within2 = "within_2", within5 = "within_5", within10 = "within_10", mape, rmspe, spearman
        }

        /// Metrics of `predicted` against `measured` (both positive).
        public init(method: String, subset: String, measured: [Double], predicted: [Double]) {
            self.method = method
            self.subset = subset
            count = measured.count
            let errors = zip(predicted, measured).map { ($0 - $1) / $1 }
            let n = Double(max(count, 1))
            within2 = Double(errors.filter { abs($0) <= 0.02 }.count) / n
            within5 = Double(errors.filter { abs($0) <= 0.05 }.count) / n
            within10 = Double(errors.filter { abs($0) <= 0.10 }.count) / n
            mape = errors.reduce(0) { $0 + abs($1) } / n
            rmspe = (errors.reduce(0) { $0 + $1 * $1 } / n).squareRoot()
            spearman = Self.spearman(measured, predicted)
        }

        /// Spearman's rank correlation (Pearson correlation of average ranks).
        static func spearman(_ a: [Double], _ b: [Double]) -> Double {
            guard a.count > 1 else { return 1 }
            func ranks(_ v: [Double]) -> [Double] {
                let order = v.indices.sorted { v[$0] < v[$1] }
                var r = [Double](repeating: 0, count: v.count)
                var i = 0
                while i < order.count {
                    var j = i
                    while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
                    let average = Double(i + j) / 2 + 1
                    for k in i...j { r[order[k]] = average }
                    i = j + 1
                }
                return r
            }
            let ra = ranks(a), rb = ranks(b)
            let n = Double(a.count), ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
            var sab = 0.0, saa = 0.0, sbb = 0.0
            for (x, y) in zip(ra, rb) { sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb) }
            return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : 0
        }
    }

    public var split: Split
    public var folds: Int
    public var networks: Int
    public var configurations: Int
    public var predictions: [Prediction]
    public var metrics: [Metrics]
    /// Every held-out kernel's prediction, and kernel-level metrics per kernel family
    /// (`method` = `kernels`, `subset` = the family).
    public var kernels: [KernelPrediction] = []

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Cross-validates on `configurations`. `folds` applies to the random split; the family and
    /// amount splits hold out each family or amount once. `alwaysTrain` joins every fold's
    /// training set and is never tested (sampled architectures, which belong to no family);
    /// it must not share a network with `configurations`. `progress` is told each finished fold.
    public static func run(_ configurations: [ProfiledConfiguration], split: Split, folds: Int = 5, seed: UInt64 = 1,
                           alwaysTrain: [ProfiledConfiguration] = [],
                           parameters: BoostedTrees.Parameters = BoostedTrees.Parameters(), threads: Int = 1,
                           progress: ((Int, Int) -> Void)? = nil) throws -> PredictorEvaluation {
        let shared = Set(configurations.map(\.model.model)).intersection(alwaysTrain.map(\.model.model))
        guard shared.isEmpty else {
            throw Failure(description: "\(shared.count) network(s) are both evaluated and always trained on (\(shared.sorted().prefix(3).joined(separator: ", "))…); a held-out network must not be in its own training set")
        }
        let networks = Array(Set(configurations.map(\.model.model))).sorted()
        var assignment: [String: String] = [:]  // network → fold label
        switch split {
        case .random:
            guard folds >= 2 else { throw Failure(description: "--folds must be at least 2") }
            guard networks.count >= folds else {
                throw Failure(description: "\(networks.count) network(s) cannot fill \(folds) folds")
            }
            var generator = SplitMix64(seed: seed)
            var shuffled = networks
            for i in stride(from: shuffled.count - 1, to: 0, by: -1) {
                shuffled.swapAt(i, Int(generator.next() % UInt64(i + 1)))
            }
            for (i, n) in shuffled.enumerated() { assignment[n] = "fold \(i % folds + 1)" }
        case .family:
            for c in configurations { assignment[c.model.model] = c.family }
        case .test:
            throw Failure(description: "the test split needs a separate test profile (holdout(train:test:))")
        case .retest:
            throw Failure(description: "the retest split compares two profiles (retest(first:second:))")
        case .amount:
            for c in configurations {
                guard !c.model.amount.isEmpty else {
                    throw Failure(description: "\(c.model.model) has no pruning amount; the amount split needs a profiled dataset")
                }
                assignment[c.model.model] = c.model.amount
            }
        }
        let labels = Array(Set(assignment.values)).sorted()
        guard labels.count >= 2 else {
            throw Failure(description: "the \(split.rawValue) split needs at least two groups; the profile has \(labels.count)")
        }
        var predictions: [Prediction] = []
        var kernelPredictions: [KernelPrediction] = []
        for (i, label) in labels.enumerated() {
            let test = configurations.filter { assignment[$0.model.model] == label }
            let train = configurations.filter { assignment[$0.model.model] != label } + alwaysTrain
            let predictor = try LatencyPredictor.fit(train, parameters: parameters, threads: threads)
            for c in test {
                let perKernel = try predictor.kernelMilliseconds(c.kernels, threads: c.model.threads)
                kernelPredictions += Self.kernelPredictions(c, perKernel)
                let predicted = predictor.milliseconds(composing: perKernel)
                let baseline = predictor.baselineMilliseconds(flops: c.model.flops ?? 0, threads: c.model.threads) ?? 0
                var p = Prediction(model: c.model.model, family: c.family, amount: c.model.amount, batch: c.model.batch,
                                   threads: c.model.threads, fold: label, measuredMs: c.model.medianMs!,
                                   predictedMs: predicted, baselineMs: max(baseline, 1e-6))
                p.addMemory(c, predictor)
                predictions.append(p)
            }
            progress?(i + 1, labels.count)
        }
        var result = summarize(predictions, split: split, labels: labels, networks: networks.count, configurations: configurations.count)
        result.addKernelMetrics(kernelPredictions)
        return result
    }

    /// The metrics of a set of predictions: overall, per held-out group (except for the random
    /// split, whose folds mean nothing), per thread count and per batch size.
    static func summarize(_ predictions: [Prediction], split: Split, labels: [String], networks: Int,
                          configurations: Int) -> PredictorEvaluation {
        var metrics: [Metrics] = []
        func add(_ subset: String, _ p: [Prediction]) {
            guard !p.isEmpty else { return }
            metrics.append(Metrics(method: "predictor", subset: subset, measured: p.map(\.measuredMs), predicted: p.map(\.predictedMs)))
            metrics.append(Metrics(method: "flops_baseline", subset: subset, measured: p.map(\.measuredMs), predicted: p.map(\.baselineMs)))
        }
        add("all", predictions)
        if split != .random && split != .test { for label in labels { add(label, predictions.filter { $0.fold == label }) } }
        for t in Array(Set(predictions.map(\.threads))).sorted() { add("threads \(t)", predictions.filter { $0.threads == t }) }
        for b in Array(Set(predictions.map(\.batch))).sorted() { add("batch \(b)", predictions.filter { $0.batch == b }) }
        // Memory: the plan alone, and the plan with the runtime's bytes fitted on the other
        // folds, against the measured anonymous memory.
        func addMemory(_ subset: String, _ p: [Prediction]) {
            let known = p.filter { ($0.measuredBytes ?? 0) > 0 && $0.plannedBytes != nil }
            guard !known.isEmpty else { return }
            let measured = known.map { Double($0.measuredBytes!) }
            metrics.append(Metrics(method: "memory_plan", subset: subset, measured: measured, predicted: known.map { Double($0.plannedBytes!) }))
            if known.allSatisfy({ $0.runtimeBytes != nil }) {
                metrics.append(Metrics(method: "memory_plan_runtime", subset: subset, measured: measured,
                                       predicted: known.map { Double($0.plannedBytes! + $0.runtimeBytes!) }))
            }
        }
        addMemory("all", predictions)
        if split != .random && split != .test { for label in labels { addMemory(label, predictions.filter { $0.fold == label }) } }
        return PredictorEvaluation(split: split, folds: labels.count, networks: networks,
                                   configurations: configurations, predictions: predictions, metrics: metrics)
    }

    /// Fits on `train` and predicts every configuration of `test`.
    public static func holdout(train: [ProfiledConfiguration], test: [ProfiledConfiguration],
                               parameters: BoostedTrees.Parameters = BoostedTrees.Parameters(), threads: Int = 1) throws -> PredictorEvaluation {
        let predictor = try LatencyPredictor.fit(train, parameters: parameters, threads: threads)
        var predictions: [Prediction] = [], kernels: [KernelPrediction] = []
        for c in test {
            let perKernel = try predictor.kernelMilliseconds(c.kernels, threads: c.model.threads)
            kernels += kernelPredictions(c, perKernel)
            var p = Prediction(
                model: c.model.model, family: c.family, amount: c.model.amount, batch: c.model.batch, threads: c.model.threads,
                fold: "test", measuredMs: c.model.medianMs!, predictedMs: predictor.milliseconds(composing: perKernel),
                baselineMs: max(predictor.baselineMilliseconds(flops: c.model.flops ?? 0, threads: c.model.threads) ?? 0, 1e-6))
            p.addMemory(c, predictor)
            predictions.append(p)
        }
        var result = summarize(predictions, split: .test, labels: ["test"], networks: Set(test.map(\.model.model)).count,
                               configurations: test.count)
        result.addKernelMetrics(kernels)
        return result
    }

    /// Each kernel of `c` with its measured time and `perKernel`, its predicted time.
    static func kernelPredictions(_ c: ProfiledConfiguration, _ perKernel: [Double]) -> [KernelPrediction] {
        zip(c.layers, perKernel).compactMap { layer, p in
            guard let k = layer.kernel, let ms = layer.layerMedianMs else { return nil }
            return KernelPrediction(model: c.model.model, batch: c.model.batch, threads: c.model.threads, kernel: k.name,
                                    kernelFamily: KernelFamily(k).rawValue, measuredMs: ms, predictedMs: p)
        }
    }

    /// Keeps the kernel predictions and adds kernel-level metrics per kernel family.
    mutating func addKernelMetrics(_ predictions: [KernelPrediction]) {
        kernels = predictions
        for family in Array(Set(predictions.map(\.kernelFamily))).sorted() {
            let mine = predictions.filter { $0.kernelFamily == family && $0.measuredMs > 0 }
            metrics.append(Metrics(method: "kernels", subset: family, measured: mine.map(\.measuredMs), predicted: mine.map(\.predictedMs)))
        }
    }
}
