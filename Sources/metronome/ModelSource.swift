import Foundation
import Metronome
import MetronomeModels

/// Resolves a MODEL argument: a zoo name for now.
enum ModelSource {
    static func load(_ spec: String, seed: UInt64 = 0) throws -> Graph {
        if spec.hasSuffix(".onnx") {
            guard FileManager.default.fileExists(atPath: spec) else {
                throw MetronomeError.invalidArgument("no such file: \(spec)")
            }
            throw MetronomeError.invalidArgument("loading ONNX files is not available in this build; use a zoo model: \(Zoo.names.joined(separator: ", "))")
        }
        return try Zoo.entry(named: spec).build(seed: seed)
    }
}
