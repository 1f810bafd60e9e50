import Metronome

/// Accuracy of a model on a labelled set, through the inference engine (optimized and
/// compiled: batch norms folded, oneDNN kernels) — a path independent of the trainer's.
public enum Evaluation {
    public struct Accuracy: Sendable, Codable, Equatable {
        public var images: Int
        public var top1: Double
        public var top5: Double
    }

    public static func accuracy(_ graph: Graph, on data: LabelledImages, batch: Int = 100, threads: Int = 1) throws -> Accuracy {
        let b = min(batch, data.count)
        let plan = try Plan.compile(graph, batch: b, options: CompileOptions(threads: threads))
        guard plan.outputNames.count == 1 else {
            throw MetronomeError.invalidArgument("accuracy needs a model with one output of class scores")
        }
        let executor = try Executor(plan: plan)
        let classesOut = plan.program.shape(plan.program.outputs[0])
        guard classesOut.count == 2, classesOut[0] == b else {
            throw MetronomeError.invalidArgument("accuracy needs logits [batch, classes]; the model gives \(classesOut)")
        }
        let inputShape = plan.program.shape(plan.program.inputs[0])
        guard Array(inputShape.dropFirst()) == data.shape else {
            throw MetronomeError.invalidArgument("the model takes images of \(Array(inputShape.dropFirst())), the data has \(data.shape)")
        }
        let k = classesOut[1]
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
}
