import Foundation
import Metronome

/// One profiled configuration with its per-kernel rows: the unit predictors are fitted and
/// evaluated on.
public struct ProfiledConfiguration: Sendable {
    public var model: ProfileRecord
    public var layers: [ProfileRecord]

    public init(model: ProfileRecord, layers: [ProfileRecord]) {
        self.model = model
        self.layers = layers
    }

    /// The network family (``ProfileRecord/family``).
    public var family: String { model.family }
    public var kernels: [KernelInfo] { layers.compactMap(\.kernel) }

    /// Successful fp32 model rows that have their kernel rows (profiles made with `--layers`), in
    /// file order. Reduced-precision rows (`profile --precision bf16`) are left out: the
    /// predictor's features describe fp32 kernels.
    ///
    /// `stage` picks inference rows or training-step rows (`profile --stage train --layers`):
    /// a predictor learns one of the two, since a training step's kernels are the trainer's
    /// forward and backward passes, not the compiled inference kernels.
    ///
    /// A configuration measured more than once (the same key in several profiles, e.g. passes
    /// made at different times) becomes one, with the median of its measurements: the
    /// model's median latency, and each kernel's median time by kernel index. On a shared
    /// machine whose speed drifts over minutes, that is what makes the target repeatable.
    public static func group(_ records: [ProfileRecord], stage: String = "inference") -> [ProfiledConfiguration] {
        var order: [String] = [], models: [String: [ProfileRecord]] = [:], layers: [String: [Int: [ProfileRecord]]] = [:]
        for r in records where r.status == .ok && r.precision == "fp32" && r.stage == stage {
            switch r.row {
            case .model:
                guard r.medianMs != nil else { continue }
                if models[r.key] == nil { order.append(r.key) }
                models[r.key, default: []].append(r)
            case .layer:
                layers[r.key, default: [:]][r.kernelIndex ?? 0, default: []].append(r)
            }
        }
        func median(_ values: [Double]) -> Double? { try? LatencyStatistics(values).median }
        return order.compactMap { key in
            guard let runs = models[key], var m = runs.first, let l = layers[key], !l.isEmpty else { return nil }
            if runs.count > 1 { m.medianMs = median(runs.compactMap(\.medianMs)) ?? m.medianMs }
            let kernels = l.keys.sorted().compactMap { index -> ProfileRecord? in
                guard var row = l[index]?.first else { return nil }
                let times = l[index]!.compactMap(\.layerMedianMs)
                if times.count > 1 { row.layerMedianMs = median(times) ?? row.layerMedianMs }
                return row
            }
            return ProfiledConfiguration(model: m, layers: kernels)
        }
    }
}

/// A latency predictor for one machine: a regressor per kernel family over the features the
/// compiler knows (``KernelFeatures``), summed over a network's kernels plus a fitted
/// per-kernel dispatch overhead, with a FLOPs-only linear baseline kept beside it for
/// comparison.
///
/// Written as versioned JSON (XGBoost's own model JSON inside, base64) with the machine it
/// was fitted on; predicting for another machine is refused unless forced, because kernel
/// speed is a property of the machine.
public struct LatencyPredictor: Codable, Sendable {
    public static let currentVersion = 3

    public struct FamilyModel: Codable, Sendable {
        /// oneDNN implementation names seen in training, the categorical feature's vocabulary.
        public var implementations: [String]
        /// Nil when the family had too few rows for trees: then `medianLogCost` predicts.
        public var trees: Data?
        public var featureCount: Int
        /// Median of ln(ms / unit) over the training rows.
        public var medianLogCost: Double
        public var rows: Int
    }

    /// Model latency ≈ a·FLOPs + b, fitted per thread count.
    public struct LinearBaseline: Codable, Sendable {
        public var threads: Int
        public var msPerGFLOP: Double
        public var interceptMs: Double
    }

    /// Cross-validated accuracy recorded at fit time (random split over networks).
    public struct Validation: Codable, Sendable {
        public var folds: Int
        public var networks: Int
        public var within10: Double
        public var mape: Double
        /// The 99th percentile of |predicted − measured| / measured: `analyze --predicted`
        /// inflates predictions by it.
        public var p99RelativeError: Double

        public init(folds: Int, networks: Int, within10: Double, mape: Double, p99RelativeError: Double) {
            self.folds = folds; self.networks = networks; self.within10 = within10; self.mape = mape
            self.p99RelativeError = p99RelativeError
        }

        enum CodingKeys: String, CodingKey {
            case folds, networks, within10 = "within_10", mape, p99RelativeError = "p99_relative_error"
        }
    }

    public var version: Int
    public var machine: MachineInfo
    public var created: String
    public var parameters: BoostedTrees.Parameters
    public var families: [String: FamilyModel]
    public var overheadPerKernelMs: Double
    public var overheadConstantMs: Double
    /// α in latency ≈ α·Σ kernel predictions + overhead per kernel · kernels.
    public var sumScale: Double
    /// Median of ln(ms / unit) over every training kernel: the cost of a family never profiled.
    public var overallMedianLogCost: Double
    public var baselines: [LinearBaseline]
    public var validation: Validation?
    public var trainingConfigurations: Int
    public var trainingKernels: Int
    public var batches: [Int]
    public var threads: [Int]
    /// What the predictor learned: nil or `inference` (compiled inference kernels), or `train`
    /// (training steps, ``KernelInfo/describe(trainingSteps:kernelSet:gradientElements:parameterElements:)``).
    public var stage: String?

    /// What a running process holds beyond its plan (oneDNN's primitives, once-per-process
    /// buffers), fitted on the training profiles; nil when they carry no memory columns
    /// (`compiled_runtime_bytes` among them).
    public var runtimeMemory: RuntimeMemory? = nil

    /// The stage, `inference` for files written before the field existed.
    public var stageName: String { stage ?? "inference" }

    enum CodingKeys: String, CodingKey {
        case stage, runtimeMemory = "runtime_memory"
        case version, machine, created, parameters, families
        case overheadPerKernelMs = "overhead_per_kernel_ms", overheadConstantMs = "overhead_constant_ms"
        case overallMedianLogCost = "overall_median_log_cost", sumScale = "sum_scale"
        case baselines, validation, trainingConfigurations = "training_configurations"
        case trainingKernels = "training_kernels", batches, threads
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Fits a predictor on configurations that carry kernel rows.
    public static func fit(_ configurations: [ProfiledConfiguration], parameters: BoostedTrees.Parameters = BoostedTrees.Parameters(),
                           threads: Int = 1) throws -> LatencyPredictor {
        guard let first = configurations.first else {
            throw Failure(description: "no successful configuration with kernel rows to fit on (profile with --layers)")
        }
        let stages = Set(configurations.map(\.model.stage))
        guard stages.count == 1 else {
            throw Failure(description: "the configurations mix stages (\(stages.sorted().joined(separator: ", "))); a predictor learns inference or training steps, not both")
        }
        var rowsByFamily: [KernelFamily: [(KernelInfo, Int, Double, KernelFeatures.Context)]] = [:]
        for c in configurations {
            let context = KernelFeatures.Context(c.kernels)
            for layer in c.layers {
                guard let k = layer.kernel, let ms = layer.layerMedianMs, ms > 0 else { continue }
                rowsByFamily[KernelFamily(k), default: []].append((k, c.model.threads, ms, context))
            }
        }
        var families: [String: FamilyModel] = [:]
        var kernelCount = 0
        var allTargets: [Float] = []
        for (family, rows) in rowsByFamily.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            kernelCount += rows.count
            let implementations = Array(Set(rows.map(\.0.implementation))).sorted()
            let targets = rows.map { Float(log($0.2 / KernelFeatures.unit($0.0))) }
            allTargets += targets
            let sorted = targets.sorted()
            let median = Double(sorted[sorted.count / 2])
            var trees: Data?
            if rows.count >= 20 {
                let features = rows.map { KernelFeatures.vector($0.0, threads: $0.1, implementations: implementations, context: $0.3) }
                trees = try BoostedTrees.fit(features: features, targets: targets, parameters: parameters, threads: threads).model
            }
            families[family.rawValue] = FamilyModel(implementations: implementations, trees: trees,
                                                    featureCount: KernelFeatures.names.count, medianLogCost: median, rows: rows.count)
        }
        var predictor = LatencyPredictor(
            version: currentVersion, machine: first.model.machine, created: ISO8601DateFormatter().string(from: Date()),
            parameters: parameters, families: families, overheadPerKernelMs: 0, overheadConstantMs: 0, sumScale: 1,
            overallMedianLogCost: allTargets.isEmpty ? 0 : Double(allTargets.sorted()[allTargets.count / 2]), baselines: [],
            validation: nil, trainingConfigurations: configurations.count, trainingKernels: kernelCount,
            batches: Array(Set(configurations.map(\.model.batch))).sorted(),
            threads: Array(Set(configurations.map(\.model.threads))).sorted(),
            stage: first.model.stage == "inference" ? nil : first.model.stage)
        // How a run's latency relates to the sum of its kernels' times, measured: latency ≈
        // α·Σ kernel times + β·kernels (β the per-kernel dispatch overhead, α what waiting
        // between kernels in the instrumented runs hides or adds), fitted by least squares on
        // relative error so that small networks count as much as large ones.
        var rows: [[Double]] = [], targets: [Double] = []
        for c in configurations {
            let sum = c.layers.reduce(0.0) { $0 + ($1.layerMedianMs ?? 0) }
            let m = c.model.medianMs!
            rows.append([sum / m, Double(c.layers.count) / m])
            targets.append(1)
        }
        let (alpha, beta) = leastSquares2(rows, targets)
        predictor.runtimeMemory = RuntimeMemory.fit(configurations)
        predictor.sumScale = alpha > 0.5 && alpha < 2 ? alpha : 1
        predictor.overheadPerKernelMs = alpha > 0.5 && alpha < 2 ? beta : 0
        predictor.overheadConstantMs = 0
        for t in predictor.threads {
            let mine = configurations.filter { $0.model.threads == t && $0.model.flops != nil }
            let (slope, intercept) = leastSquares(mine.map { Double($0.model.flops!) / 1e9 }, mine.map { $0.model.medianMs! })
            predictor.baselines.append(LinearBaseline(threads: t, msPerGFLOP: slope, interceptMs: intercept))
        }
        return predictor
    }

    /// Least squares for y ≈ a·x₀ + b·x₁; (1, 0) when singular.
    static func leastSquares2(_ x: [[Double]], _ y: [Double]) -> (Double, Double) {
        guard let c = LeastSquares.solve(x, y) else { return (1, 0) }
        return (c[0], c[1])
    }

    /// y ≈ a·x + b; a constant fit when x does not vary.
    static func leastSquares(_ x: [Double], _ y: [Double]) -> (Double, Double) {
        guard !x.isEmpty else { return (0, 0) }
        let n = Double(x.count), mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        let sxx = zip(x, x).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - mx) }
        guard sxx > 1e-12 else { return (0, my) }
        let sxy = zip(x, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        let a = sxy / sxx
        return (a, my - a * mx)
    }

    /// Predicted time of each kernel, in milliseconds.
    public func kernelMilliseconds(_ kernels: [KernelInfo], threads: Int, threadsForTrees: Int = 1) throws -> [Double] {
        var result = [Double](repeating: 0, count: kernels.count)
        let context = KernelFeatures.Context(kernels)
        var byFamily: [KernelFamily: [Int]] = [:]
        for (i, k) in kernels.enumerated() { byFamily[KernelFamily(k), default: []].append(i) }
        for (family, indices) in byFamily {
            guard let model = families[family.rawValue] else {
                // A kind never profiled here: its roofline unit at the median cost of all the
                // kernels profiled (`predict` lists these kernels' family, so it is visible).
                let fallback = overallMedianLogCost
                for i in indices { result[i] = exp(fallback) * KernelFeatures.unit(kernels[i]) }
                continue
            }
            var logCosts = [Double](repeating: model.medianLogCost, count: indices.count)
            if let trees = model.trees {
                let features = indices.map {
                    KernelFeatures.vector(kernels[$0], threads: threads, implementations: model.implementations, context: context)
                }
                logCosts = try BoostedTrees(model: trees, featureCount: model.featureCount)
                    .predict(features, threads: threadsForTrees).map(Double.init)
            }
            for (j, i) in indices.enumerated() { result[i] = exp(logCosts[j]) * KernelFeatures.unit(kernels[i]) }
        }
        return result
    }

    /// Predicted latency of a network from its compiled kernels.
    public func milliseconds(_ kernels: [KernelInfo], threads: Int) throws -> Double {
        milliseconds(composing: try kernelMilliseconds(kernels, threads: threads))
    }

    /// A network's latency from its kernels' predicted times (``kernelMilliseconds(_:threads:threadsForTrees:)``),
    /// for callers that also need those times and should not predict them twice.
    public func milliseconds(composing perKernel: [Double]) -> Double {
        let sum = perKernel.reduce(0, +)
        return max(sumScale * sum + overheadPerKernelMs * Double(perKernel.count) + overheadConstantMs, sum * 0.5)
    }

    /// The FLOPs-only baseline's latency for a network of `flops` at `threads` (the nearest
    /// fitted thread count).
    public func baselineMilliseconds(flops: Int, threads: Int) -> Double? {
        guard let b = baselines.min(by: { abs($0.threads - threads) < abs($1.threads - threads) }) else { return nil }
        return b.msPerGFLOP * Double(flops) / 1e9 + b.interceptMs
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    public static func load(_ path: String) throws -> LatencyPredictor {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read the predictor \(path)")
        }
        let predictor: LatencyPredictor
        do { predictor = try JSONDecoder().decode(LatencyPredictor.self, from: data) } catch {
            throw Failure(description: "\(path) is not a Metronome predictor: \(error)")
        }
        guard predictor.version == currentVersion else {
            throw Failure(description: "\(path) is predictor format \(predictor.version); this Metronome reads format \(currentVersion) (refit it with `metronome fit`)")
        }
        return predictor
    }
}
