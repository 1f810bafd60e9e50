import Foundation
import Metronome

/// Test–retest agreement of two profiles of the same configurations: the ceiling of any
/// latency predictor on this machine.
///
/// A predictor is scored against one measurement of each network. If a second measurement of
/// the same network, minutes later, lands only so often within ±10% of the first, no predictor
/// can do better than that against either, so this is the first number to look at before
/// reading a predictor's accuracy. It uses the same metrics as the predictor's evaluation, with
/// the second profile in the place of the prediction.
extension PredictorEvaluation {
    /// Pairs every successful model row of `first` with the row of `second` that has the same key
    /// (model, stage, precision, batch, threads, cores, machine) and, where both have kernel
    /// rows, every kernel with the kernel of the same index. Metrics are `method` = `retest`
    /// (overall, per thread count, per batch size) and `kernels` per kernel family.
    public static func retest(first: [ProfileRecord], second: [ProfileRecord]) throws -> PredictorEvaluation {
        func models(_ records: [ProfileRecord]) -> [String: ProfileRecord] {
            var map: [String: ProfileRecord] = [:]
            for r in records where r.row == .model && r.status == .ok && (r.medianMs ?? 0) > 0 { map[r.key] = r }
            return map
        }
        func layers(_ records: [ProfileRecord]) -> [String: [Int: ProfileRecord]] {
            var map: [String: [Int: ProfileRecord]] = [:]
            for r in records where r.row == .layer && r.status == .ok {
                if let index = r.kernelIndex, (r.layerMedianMs ?? 0) > 0 { map[r.key, default: [:]][index] = r }
            }
            return map
        }
        let a = models(first), b = models(second)
        let keys = a.keys.filter { b[$0] != nil }.sorted()
        guard !keys.isEmpty else {
            throw Failure(description: "the two profiles have no successful configuration in common (same model, stage, precision, batch, threads, cores and machine)")
        }
        let layersA = layers(first), layersB = layers(second)
        var predictions: [Prediction] = [], kernels: [KernelPrediction] = []
        for key in keys {
            let m = a[key]!, again = b[key]!
            predictions.append(Prediction(model: m.model, family: m.family, amount: m.amount,
                                          batch: m.batch, threads: m.threads, fold: "retest", measuredMs: m.medianMs!,
                                          predictedMs: again.medianMs!, baselineMs: again.medianMs!))
            guard let ka = layersA[key], let kb = layersB[key] else { continue }
            for (index, layer) in ka.sorted(by: { $0.key < $1.key }) {
                guard let other = kb[index], let kernel = layer.kernel, other.kernel?.name == kernel.name else { continue }
                kernels.append(KernelPrediction(model: m.model, batch: m.batch, threads: m.threads, kernel: kernel.name,
                                                kernelFamily: KernelFamily(kernel).rawValue, measuredMs: layer.layerMedianMs!,
                                                predictedMs: other.layerMedianMs!))
            }
        }
        var metrics: [Metrics] = []
        func add(_ subset: String, _ p: [Prediction]) {
            guard !p.isEmpty else { return }
            metrics.append(Metrics(method: "retest", subset: subset, measured: p.map(\.measuredMs), predicted: p.map(\.predictedMs)))
        }
        add("all", predictions)
        for t in Array(Set(predictions.map(\.threads))).sorted() { add("threads \(t)", predictions.filter { $0.threads == t }) }
        for batch in Array(Set(predictions.map(\.batch))).sorted() { add("batch \(batch)", predictions.filter { $0.batch == batch }) }
        var result = PredictorEvaluation(split: .retest, folds: 1, networks: Set(predictions.map(\.model)).count,
                                         configurations: predictions.count, predictions: predictions, metrics: metrics)
        result.addKernelMetrics(kernels)
        return result
    }
}
