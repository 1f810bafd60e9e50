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
    public static func accuracy(_ graph: Graph, on data: LabelledImages, batch: Int = 100, fold: Int = 1, threads: Int = 1) throws -> Accuracy {
        let b = max(fold, min(batch, data.count) / fold * fold)
        let plan = try Plan.compile(graph, batch: b / fold, options: CompileOptions(threads: threads))
        guard plan.outputNames.count == 1 else {
            throw MetronomeError.invalidArgument("accuracy needs a model with one output of class scores")
        }
        let executor = try Executor(plan: plan)
        let classesOut = plan.program.shape(plan.program.outputs[0])
        guard classesOut.count == 2, classesOut[0] == b / fold, classesOut[1] % fold == 0 else {
            throw MetronomeError.invalidArgument("accuracy needs logits [batch, classes] (\(fold) images' per row when folded); the model gives \(classesOut)")
        }
        let inputShape = plan.program.shape(plan.program.inputs[0])
        var imageShape = Array(inputShape.dropFirst())
        if !imageShape.isEmpty { imageShape[0] /= fold }
        guard imageShape == data.shape, inputShape.count > 1, inputShape[1] % fold == 0 else {
            throw MetronomeError.invalidArgument("the model takes \(Array(inputShape.dropFirst())) per input row (fold \(fold)); the data's images are \(data.shape)")
        }
        let k = classesOut[1] / fold
        let input = UnsafeMutablePointer<Float>.allocate(capacity: b * data.imageSize)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: b * k)
        defer { input.deallocate(); output.deallocate() }
        var top1 = 0, top5 = 0
        var start = 0
        while start < data.count {
            let n = min(b, data.count - start)
            data.pixels.withUnsafeBufferPointer { src in
                input.update(from: src.baseAddress! + start * data.imageSize, count: n * data.imageSize)
            }
            if n < b { (input + n * data.imageSize).update(repeating: 0, count: (b - n) * data.imageSize) }
            try executor.run(inputs: [UnsafePointer(input)], outputs: [output])
            for i in 0..<n {
                let row = output + i * k, label = Int(data.labels[start + i])
                let better = (0..<k).filter { row[$0] > row[label] }.count
                if better == 0 { top1 += 1 }
                if better < 5 { top5 += 1 }
            }
            start += n
        }
        return Accuracy(images: data.count, top1: Double(top1) / Double(data.count), top5: Double(top5) / Double(data.count))
    }

    /// The model's logits for every image of `data` (`count × classes`, in order): a teacher's
    /// targets for distillation, computed once on the images as they are (not augmented).
    public static func logits(_ graph: Graph, on data: LabelledImages, batch: Int = 100, threads: Int = 1) throws -> [Float] {
        let b = min(batch, data.count)
        let plan = try Plan.compile(graph, batch: b, options: CompileOptions(threads: threads))
        let out = plan.program.shape(plan.program.outputs[0])
        guard plan.program.inputs.count == 1, Array(plan.program.shape(plan.program.inputs[0]).dropFirst()) == data.shape,
              out.count == 2, out[0] == b else {
            throw MetronomeError.invalidArgument("the teacher must take \(data.shape) images and give logits [batch, classes]; it gives \(out)")
        }
        let k = out[1]
        let executor = try Executor(plan: plan)
        let input = UnsafeMutablePointer<Float>.allocate(capacity: b * data.imageSize)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: b * k)
        defer { input.deallocate(); output.deallocate() }
        var logits = [Float](repeating: 0, count: data.count * k)
        var start = 0
        while start < data.count {
            let n = min(b, data.count - start)
            data.pixels.withUnsafeBufferPointer { input.update(from: $0.baseAddress! + start * data.imageSize, count: n * data.imageSize) }
            if n < b { (input + n * data.imageSize).update(repeating: 0, count: (b - n) * data.imageSize) }
            try executor.run(inputs: [UnsafePointer(input)], outputs: [output])
            for i in 0..<(n * k) { logits[start * k + i] = output[i] }
            start += n
        }
        return logits
    }
}
