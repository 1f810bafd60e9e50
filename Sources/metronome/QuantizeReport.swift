import Foundation
import Metronome
import MetronomeTraining
import MetronomeTransforms

/// How closely a quantized model (int8 kernels) follows its float original (fp32) on the same
/// inputs: per image, the largest logit difference over the largest float logit, and whether
/// the top class is the same; with labels, both models' top-1 accuracy.
struct QuantizationFidelity: Codable, Equatable {
    var data: String
    var images: Int
    var top1Agreement: Double
    var maxRelativeError: Double
    var meanRelativeError: Double
    var floatAccuracy: Double?
    var int8Accuracy: Double?

    static func measure(float: Graph, quantized: Graph, on data: CalibrationData, batch: Int, threads: Int) throws -> QuantizationFidelity {
        let b = min(batch, data.count)
        let shapes = [float.inputs[0].name: [b] + data.sampleShape]
        let reference = try Executor(plan: Plan.compile(float, inputShapes: shapes, options: CompileOptions(threads: threads)))
        let int8 = try Executor(plan: Plan.compile(quantized, inputShapes: [quantized.inputs[0].name: [b] + data.sampleShape],
                                                   options: CompileOptions(threads: threads, precision: .int8)))
        var floatLogits: [Float] = [], int8Logits: [Float] = []
        try data.forEachBatch(b) { tensor, _, real in
            let f = try reference.run([tensor])[0], q = try int8.run([tensor])[0]
            let rows = f.count / b * real
            floatLogits += f.scalars[..<rows]
            int8Logits += q.scalars[..<rows]
        }
        let c = try Evaluation.compareLogits(floatLogits, int8Logits, classes: floatLogits.count / max(data.count, 1),
                                             labels: data.labels, of: data.name)
        return QuantizationFidelity(data: data.name, images: c.images, top1Agreement: c.top1Agreement,
                                    maxRelativeError: c.maxRelativeError, meanRelativeError: c.meanRelativeError,
                                    floatAccuracy: c.reference?.top1, int8Accuracy: c.other?.top1)
    }

    var text: String {
        var lines = ["fidelity on \(images) image(s) of \(data): top-1 agreement \(String(format: "%.2f", 100 * top1Agreement))%, logits' relative error max \(String(format: "%.2e", maxRelativeError)), mean \(String(format: "%.2e", meanRelativeError))"]
        if let floatAccuracy, let int8Accuracy {
            lines.append("accuracy: fp32 \(String(format: "%.2f", 100 * floatAccuracy))%, int8 \(String(format: "%.2f", 100 * int8Accuracy))% (\(String(format: "%+.2f", 100 * (int8Accuracy - floatAccuracy))) points)")
        }
        return lines.joined(separator: "\n")
    }
}

/// What `metronome quantize` did.
struct QuantizeReport: Codable, Equatable {
    var model: String
    var out: String
    var method: CalibrationMethod
    var perChannel: Bool
    var activations: QuantizedType
    var calibrationSamples: Int
    var layers: [Quantizer.Layer]
    var kept: [String]
    var fidelity: QuantizationFidelity

    var text: String {
        var lines = ["wrote \(out): \(layers.count) layer(s) of \(model) quantized (\(method.rawValue) ranges from \(calibrationSamples) sample(s), \(activations.rawValue) activations, int8 weights \(perChannel ? "per channel" : "per tensor"))"]
        if !kept.isEmpty { lines.append("kept in float: \(kept.joined(separator: ", "))") }
        lines.append(fidelity.text)
        return lines.joined(separator: "\n")
    }

    func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
