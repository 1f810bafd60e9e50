import Metronome

/// Accuracy of a model on a labelled set, through the inference engine (optimized and
/// compiled: batch norms folded, oneDNN kernels) — a path independent of the trainer's.
public enum Evaluation {
    public struct Accuracy: Sendable, Codable, Equatable {
        public var images: Int
        public var top1: Double
        public var top5: Double
    }

    /// With `fold`, the model takes `fold` images per input row (FoldedCNNs) and gives their
    /// logits side by side; `batch` counts images and is rounded to a multiple of `fold`.
    public static func accuracy(_ graph: Graph, on data: LabelledImages, batch: Int = 100, fold: Int = 1, threads: Int = 1,
                                precision: Precision = .fp32) throws -> Accuracy {
        var top1 = 0, top5 = 0
        try forEachBatch(graph, on: data, batch: batch, fold: fold, threads: threads, precision: precision) { start, n, scores, k in
            for i in 0..<n {
                let rank = try labelRank(Int(data.labels[start + i]), image: start + i, of: data.name, in: scores + i * k, classes: k)
                if rank == 0 { top1 += 1 }
                if rank < 5 { top5 += 1 }
            }
        }
        return Accuracy(images: data.count, top1: Double(top1) / Double(data.count), top5: Double(top5) / Double(data.count))
    }

    /// The model's logits for every image of `data` (`count × classes`, in order): a teacher's
    /// targets for distillation, computed once on the images as they are (not augmented).
    public static func logits(_ graph: Graph, on data: LabelledImages, batch: Int = 100, threads: Int = 1,
                              precision: Precision = .fp32) throws -> [Float] {
        var logits: [Float] = []
        try forEachBatch(graph, on: data, batch: batch, fold: 1, threads: threads, precision: precision) { _, n, scores, k in
            logits.append(contentsOf: UnsafeBufferPointer(start: scores, count: n * k))
        }
        return logits
    }

    /// The rank of image `image`'s label among its scores (0: the top class); a label the model
    /// cannot score is an error naming the image and the data.
    static func labelRank(_ label: Int, image: Int, of name: String, in scores: UnsafePointer<Float>, classes k: Int) throws -> Int {
        guard label >= 0 && label < k else {
            throw MetronomeError.invalidArgument("image \(image) of \(name) has label \(label); the model scores \(k) classes")
        }
        return Ranking.rank(of: label, in: scores, classes: k)
    }

    /// How far one model's logits are from a reference's on the same images: top-1 agreement,
    /// the per-image relative error (largest difference over the largest reference logit), its
    /// maximum and mean, and with labels both accuracies.
    public struct LogitComparison: Sendable, Equatable {
        public var images: Int
        public var top1Agreement: Double
        public var maxRelativeError: Double
        public var meanRelativeError: Double
        public var reference: Accuracy?
        public var other: Accuracy?
    }

    /// `reference` and `other` hold `images × classes` logits, row by row.
    public static func compareLogits(_ reference: [Float], _ other: [Float], classes k: Int, labels: [Int]?,
                                     of name: String) throws -> LogitComparison {
        let n = reference.count / max(k, 1)
        var agree = 0, maxError = 0.0, sumError = 0.0
        var top = [[0, 0], [0, 0]]  // [reference, other] × [top-1, top-5]
        try reference.withUnsafeBufferPointer { r in
            try other.withUnsafeBufferPointer { q in
                for i in 0..<n {
                    if let labels {
                        for (j, p) in [r, q].enumerated() {
                            let rank = try labelRank(labels[i], image: i, of: name, in: p.baseAddress! + i * k, classes: k)
                            if rank == 0 { top[j][0] += 1 }
                            if rank < 5 { top[j][1] += 1 }
                        }
                    }
                    var scale: Float = 0, diff: Float = 0, best = (0, 0)
                    for c in 0..<k {
                        scale = max(scale, abs(r[i * k + c]))
                        diff = max(diff, abs(r[i * k + c] - q[i * k + c]))
                        if r[i * k + c] > r[i * k + best.0] { best.0 = c }
                        if q[i * k + c] > q[i * k + best.1] { best.1 = c }
                    }
                    if best.0 == best.1 { agree += 1 }
                    let e = Double(scale > 0 ? diff / scale : diff)
                    maxError = max(maxError, e)
                    sumError += e
                }
            }
        }
        func accuracy(_ j: Int) -> Accuracy? {
            labels == nil ? nil : Accuracy(images: n, top1: Double(top[j][0]) / Double(n), top5: Double(top[j][1]) / Double(n))
        }
        return LogitComparison(images: n, top1Agreement: Double(agree) / Double(n), maxRelativeError: maxError,
                               meanRelativeError: sumError / Double(n), reference: accuracy(0), other: accuracy(1))
    }

    /// A reduced-precision compile against fp32 on every image of `data`.
    public struct PrecisionComparison: Sendable, Codable, Equatable {
        public var precision: String
        public var fp32: Accuracy
        public var reduced: Accuracy
        public var top1Agreement: Double
        public var maxRelativeError: Double
        public var meanRelativeError: Double
    }

    public static func compare(_ graph: Graph, on data: LabelledImages, precision: Precision, batch: Int = 100,
                               threads: Int = 1) throws -> PrecisionComparison {
        let reference = try logits(graph, on: data, batch: batch, threads: threads)
        let reduced = try logits(graph, on: data, batch: batch, threads: threads, precision: precision)
        let c = try compareLogits(reference, reduced, classes: reference.count / max(data.count, 1),
                                  labels: data.labels.map(Int.init), of: data.name)
        return PrecisionComparison(precision: precision.rawValue, fp32: c.reference!, reduced: c.other!,
                                   top1Agreement: c.top1Agreement, maxRelativeError: c.maxRelativeError,
                                   meanRelativeError: c.meanRelativeError)
    }

    /// Compiles `graph` for `batch` images (`batch / fold` input rows), checks that it takes
    /// the data's images and gives one row of class scores per image, and runs it over the
    /// data in order, the last batch padded with zeros. `body` gets the first image's index,
    /// the images in the batch, their scores (`n × classes`, row-major) and the class count.
    static func forEachBatch(_ graph: Graph, on data: LabelledImages, batch: Int, fold: Int, threads: Int, precision: Precision = .fp32,
                             _ body: (_ start: Int, _ n: Int, _ scores: UnsafePointer<Float>, _ classes: Int) throws -> Void) throws {
        let b = max(fold, min(batch, data.count) / fold * fold)
        let plan = try Plan.compile(graph, batch: b / fold, options: CompileOptions(threads: threads, precision: precision))
        guard plan.program.inputs.count == 1, plan.program.outputs.count == 1 else {
            throw MetronomeError.invalidArgument("the model must have one input of images and one output of class scores")
        }
        let out = plan.program.shape(plan.program.outputs[0])
        guard out.count == 2, out[0] == b / fold, out[1] % fold == 0 else {
            throw MetronomeError.invalidArgument("the model must give logits [batch, classes] (\(fold) images' per row when folded); it gives \(out)")
        }
        let inputShape = plan.program.shape(plan.program.inputs[0])
        var imageShape = Array(inputShape.dropFirst())
        if !imageShape.isEmpty { imageShape[0] /= fold }
        guard imageShape == data.shape, inputShape.count > 1, inputShape[1] % fold == 0 else {
            throw MetronomeError.invalidArgument("the model takes \(Array(inputShape.dropFirst())) per input row (fold \(fold)); the data's images are \(data.shape)")
        }
        let k = out[1] / fold
        let executor = try Executor(plan: plan)
        let input = UnsafeMutablePointer<Float>.allocate(capacity: b * data.imageSize)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: b * k)
        defer { input.deallocate(); output.deallocate() }
        var start = 0
        while start < data.count {
            let n = min(b, data.count - start)
            data.pixels.withUnsafeBufferPointer { input.update(from: $0.baseAddress! + start * data.imageSize, count: n * data.imageSize) }
            if n < b { (input + n * data.imageSize).update(repeating: 0, count: (b - n) * data.imageSize) }
            try executor.run(inputs: [UnsafePointer(input)], outputs: [output])
            try body(start, n, output, k)
            start += n
        }
    }
}
