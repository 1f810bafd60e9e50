import Foundation
import Metronome

/// How `metronome quantize` turns the values a tensor took on the calibration inputs into a
/// range: all of them, a percentile of their magnitudes, or the threshold that keeps the most
/// information (the KL-divergence search of TensorRT's entropy calibrator).
public enum CalibrationMethod: String, Sendable, CaseIterable, Codable {
    case minmax, percentile, entropy
}

/// What the calibration runs saw of one tensor: its extremes and, for the percentile and
/// entropy methods, histograms of the positive values over `[0, max]` and of the negative
/// values' magnitudes over `[0, -min]` (each side of a signed tensor gets its own threshold:
/// a normalized image's background spike on one side must not clip the other).
public struct TensorStatistics: Sendable, Codable, Equatable {
    public var min: Float = .infinity
    public var max: Float = -.infinity
    public var positive = Histogram()
    public var negative = Histogram()

    public init() {}

    /// Counts of magnitudes in equal bins over `[0, top]`.
    public struct Histogram: Sendable, Codable, Equatable {
        public var top: Float = 0
        public var counts: [Double] = []

        /// Bins per histogram (TensorRT and ONNX Runtime use 2048).
        public static let bins = 2048

        mutating func add(_ magnitude: Float) {
            if counts.isEmpty { counts = Array(repeating: 0, count: Self.bins) }
            let b = top > 0 ? Swift.min(Int(magnitude / top * Float(Self.bins)), Self.bins - 1) : 0
            counts[b] += 1
        }

        var total: Double { counts.reduce(0, +) }

        /// The `p`-th percentile of the magnitudes.
        func percentile(_ p: Double) -> Float {
            let all = total
            guard all > 0 else { return top }
            var seen = 0.0
            for (i, h) in counts.enumerated() {
                seen += h
                if seen >= all * p / 100 { return Float(i + 1) / Float(counts.count) * top }
            }
            return top
        }

        /// The threshold whose clipped, `levels`-level quantized distribution is closest (in KL
        /// divergence) to the observed one (TensorRT's entropy calibration).
        func entropyThreshold(levels: Int) -> Float {
            let bins = counts.count
            guard bins > levels, total > 0 else { return top }
            // The spike of exact zeros (ReLU outputs, padding) says nothing about the range and,
            // smeared over a merged group, would make every wide range look bad: bin 0 counts
            // as its neighbour does (as NVIDIA's pytorch-quantization calibrator does).
            var histogram = counts
            histogram[0] = histogram[1]
            var best = bins, bestDivergence = Double.infinity
            var p = [Double](repeating: 0, count: bins), q = [Double](repeating: 0, count: bins)
            var tail = histogram[levels...].reduce(0, +)
            for i in levels...bins {
                // The reference: the first i bins, everything beyond folded into the last.
                for k in 0..<i { p[k] = histogram[k] }
                p[i - 1] += tail
                if i < bins { tail -= histogram[i] }
                // Its quantization (without the folded tail): `levels` groups of bins, each
                // group's mass spread evenly over the group's non-empty bins.
                for j in 0..<levels {
                    let start = j * i / levels, end = (j + 1) * i / levels
                    var mass = 0.0, nonEmpty = 0
                    for k in start..<end where histogram[k] > 0 { mass += histogram[k]; nonEmpty += 1 }
                    for k in start..<end { q[k] = histogram[k] > 0 ? mass / Double(nonEmpty) : 0 }
                }
                let pSum = p[0..<i].reduce(0, +), qSum = q[0..<i].reduce(0, +)
                guard pSum > 0, qSum > 0 else { continue }
                var divergence = 0.0
                for k in 0..<i where p[k] > 0 {
                    let pk = p[k] / pSum
                    let qk = Swift.max(q[k] / qSum, 1e-12)
                    divergence += pk * log(pk / qk)
                }
                if divergence < bestDivergence { bestDivergence = divergence; best = i }
            }
            return Float(best) / Float(bins) * top
        }
    }

    /// First pass: the extremes.
    public mutating func observeRange(_ x: UnsafeBufferPointer<Float>) {
        for v in x { min = Swift.min(min, v); max = Swift.max(max, v) }
    }

    /// Second pass (after every range is known): the histograms.
    public mutating func observeHistogram(_ x: UnsafeBufferPointer<Float>) {
        positive.top = Swift.max(max, 0)
        negative.top = Swift.max(-min, 0)
        for v in x {
            if v >= 0 { positive.add(v) } else { negative.add(-v) }
        }
    }

    /// The real range `[low, high]` (always holding zero) the method keeps.
    public func range(_ method: CalibrationMethod, percentile: Double, levels: Int) -> (Float, Float) {
        let low = Swift.min(min, 0), high = Swift.max(max, 0)
        guard low.isFinite, high.isFinite else { return (0, 0) }
        func threshold(_ h: Histogram, _ full: Float) -> Float {
            guard full > 0, h.total > 0 else { return full }
            switch method {
            case .minmax: return full
            case .percentile: return Swift.min(full, h.percentile(percentile))
            case .entropy: return Swift.min(full, h.entropyThreshold(levels: levels))
            }
        }
        return (-threshold(negative, -low), threshold(positive, high))
    }
}

/// Runs a float model on calibration batches and records statistics of chosen tensors.
public struct Calibrator {
    public let graph: Graph
    public let tensors: [String]
    public var threads = 1

    public init(graph: Graph, tensors: [String], threads: Int = 1) {
        self.graph = graph
        self.tensors = tensors
        self.threads = threads
    }

    /// One pass for the extremes and, unless `method` is minmax, one for the histograms.
    /// `batches` all have the model input's shape; `progress(done, total)` after each run.
    public func statistics(_ batches: [Tensor], method: CalibrationMethod,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> [String: TensorStatistics] {
        guard let first = batches.first else { throw MetronomeError.invalidArgument("no calibration inputs") }
        guard graph.inputs.count == 1 else {
            throw MetronomeError.invalidArgument("calibration needs a model with one input; \(graph.name) has \(graph.inputs.count)")
        }
        var observed = graph
        let extra = tensors.filter { !graph.outputs.contains($0) }
        observed.outputs += extra
        let plan = try Plan.compile(observed, inputShapes: [graph.inputs[0].name: first.shape],
                                    options: CompileOptions(threads: threads))
        let executor = try Executor(plan: plan)
        let names = graph.outputs + extra
        var stats: [String: TensorStatistics] = [:]
        let passes = method == .minmax ? 1 : 2
        for pass in 0..<passes {
            for (b, batch) in batches.enumerated() {
                guard batch.shape == first.shape else {
                    throw MetronomeError.invalidArgument("calibration batch \(b) has shape \(batch.shape), the first \(first.shape)")
                }
                let outputs = try executor.run([batch])
                for (name, t) in zip(names, outputs) where tensors.contains(name) {
                    t.scalars.withUnsafeBufferPointer { buf in
                        if pass == 0 { stats[name, default: TensorStatistics()].observeRange(buf) }
                        else { stats[name]!.observeHistogram(buf) }
                    }
                }
                progress(pass * batches.count + b + 1, passes * batches.count)
            }
        }
        return stats
    }
}
