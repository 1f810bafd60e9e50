import Foundation
import Metronome
import MetronomeIO
import MetronomeTraining

/// Model inputs for calibration and fidelity checks, with labels when the data has them.
struct CalibrationData {
    var name: String
    /// One sample's shape (the model input without its batch dimension).
    var sampleShape: [Int]
    var values: [Float]
    var labels: [Int]?
    var count: Int { values.count / max(sampleShape.reduce(1, *), 1) }

    /// Reads DATA (see `quantize --help`) and keeps `samples` of it, evenly spaced.
    static func load(_ spec: String, for graph: Graph, samples: Int) throws -> CalibrationData {
        let inputShape = graph.inputs[0].shape
        let wanted = Array(inputShape.dropFirst())
        var data: CalibrationData
        if spec.hasPrefix("fashion-mnist") || spec.hasPrefix("npy:") || spec.hasPrefix("folder:") {
            let images = try LabelledImages.load(spec, size: wanted.count == 3 && wanted[1] > 0 ? wanted[1] : nil)
            data = CalibrationData(name: spec, sampleShape: images.shape, values: images.pixels, labels: images.labels.map(Int.init))
        } else if spec.hasSuffix(".npy") {
            let t = try NPY.read(URL(fileURLWithPath: spec))
            guard t.rank >= 1, t.shape[0] >= 1 else { throw MetronomeError.invalidArgument("\(spec): an empty array") }
            data = CalibrationData(name: spec, sampleShape: Array(t.shape.dropFirst()), values: t.scalars, labels: nil)
        } else {
            data = try photographs(spec, shape: wanted)
        }
        guard data.sampleShape.count == wanted.count,
              zip(data.sampleShape, wanted).allSatisfy({ $1 <= 0 || $0 == $1 }) else {
            throw MetronomeError.invalidArgument("\(spec): samples have shape \(data.sampleShape) but the model takes \(wanted) per input row")
        }
        return data.evenlySpaced(samples)
    }

    /// A directory of PNG/JPEG photographs, preprocessed as `classify` does, at the model's size.
    static func photographs(_ dir: String, shape: [Int]) throws -> CalibrationData {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw MetronomeError.invalidArgument("\(dir): not a dataset name, an .npy file or a directory of images; use fashion-mnist, npy:IMAGES.npy,LABELS.npy, folder:DIR, FILE.npy or DIR")
        }
        guard shape.count == 3, shape[0] == 3, shape[1] > 0, shape[1] == shape[2] else {
            throw MetronomeError.invalidArgument("\(dir): photographs need a model with a square [N, 3, H, W] input; this one takes \(shape)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().filter {
            ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased())
        }
        guard !files.isEmpty else { throw MetronomeError.invalidArgument("\(dir): no PNG or JPEG files") }
        let preprocess = ImagePreprocessor(resize: shape[1] * 256 / 224, crop: shape[1])
        var values: [Float] = []
        for f in files {
            values += try preprocess(ImageDecoder.load(URL(fileURLWithPath: (dir as NSString).appendingPathComponent(f)))).scalars
        }
        return CalibrationData(name: dir, sampleShape: shape, values: values, labels: nil)
    }

    /// At most `n` samples, evenly spaced across the data.
    func evenlySpaced(_ n: Int) -> CalibrationData {
        guard n < count else { return self }
        let size = sampleShape.reduce(1, *)
        let picks = (0..<n).map { $0 * count / n }
        var out = self
        out.values = picks.flatMap { values[($0 * size)..<(($0 + 1) * size)] }
        out.labels = labels.map { l in picks.map { l[$0] } }
        return out
    }

    /// Batches of `size` samples (fewer when the data has fewer); the last one is padded with
    /// zeros, and `body` gets how many of its rows are real.
    func forEachBatch(_ size: Int, _ body: (_ batch: Tensor, _ start: Int, _ real: Int) throws -> Void) throws {
        let b = min(size, count), sample = sampleShape.reduce(1, *)
        var start = 0
        while start < count {
            let real = min(b, count - start)
            var scalars = Array(values[(start * sample)..<((start + real) * sample)])
            scalars += [Float](repeating: 0, count: (b - real) * sample)
            try body(try Tensor(shape: [b] + sampleShape, scalars: scalars), start, real)
            start += real
        }
    }

    /// Calibration batches (the padded last batch is left out unless it is the only one).
    func batches(of size: Int) throws -> [Tensor] {
        var out: [Tensor] = []
        try forEachBatch(size) { t, _, real in if real == min(size, count) { out.append(t) } }
        return out
    }
}
