import Foundation
import Metronome
import MetronomeModels
import MetronomeONNX

/// Resolves a MODEL argument: a path to an `.onnx` file, or a zoo name.
enum ModelSource {
    static func load(_ spec: String, seed: UInt64 = 0) throws -> Graph {
        if spec.hasSuffix(".onnx") || spec.contains("/") {
            return try ONNXImporter.load(URL(fileURLWithPath: spec))
        }
        return try Zoo.entry(named: spec).build(seed: seed)
    }
}
