import Foundation
import Metronome
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
        var agree = 0, floatRight = 0, int8Right = 0
        var maxError = 0.0, sumError = 0.0
        try data.forEachBatch(b) { tensor, start, real in
            let f = try reference.run([tensor])[0], q = try int8.run([tensor])[0]
            let k = f.count / b
            for i in 0..<real {
                let fr = f.scalars[(i * k)..<((i + 1) * k)], qr = q.scalars[(i * k)..<((i + 1) * k)]
                let scale = Double(fr.map(abs).max() ?? 0)
                let diff = Double(zip(fr, qr).map { abs($0 - $1) }.max() ?? 0)
                let e = scale > 0 ? diff / scale : diff
                maxError = max(maxError, e)
                sumError += e
                let ft = fr.indices.max { fr[$0] < fr[$1] }!, qt = qr.indices.max { qr[$0] < qr[$1] }!
                if ft == qt { agree += 1 }
                if let labels = data.labels {
                    if ft - fr.startIndex == labels[start + i] { floatRight += 1 }
                    if qt - qr.startIndex == labels[start + i] { int8Right += 1 }
                }
            }
        }
        let n = Double(data.count)
        return QuantizationFidelity(data: data.name, images: data.count, top1Agreement: Double(agree) / n,
                                    maxRelativeError: maxError, meanRelativeError: sumError / n,
                                    floatAccuracy: data.labels == nil ? nil : Double(floatRight) / n,
                                    int8Accuracy: data.labels == nil ? nil : Double(int8Right) / n)
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
