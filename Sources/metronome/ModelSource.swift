import Foundation
import Metronome
import MetronomeModels
import MetronomeONNX

/// Resolves a MODEL argument: a path to an `.onnx` file, a multi-branch config (`.yaml`,
/// NN-Stretch's pycls format, built with seeded weights), or a zoo name.
enum ModelSource {
    static func isFile(_ spec: String) -> Bool {
        spec.hasSuffix(".onnx") || spec.contains("/") || isBranchConfig(spec)
    }

    static func isBranchConfig(_ spec: String) -> Bool {
        spec.hasSuffix(".yaml") || spec.hasSuffix(".yml")
    }

    /// Loads the model. For ONNX files, `inputShapes` fixes symbolic input dimensions
    /// before the importer evaluates shape computations.
    static func load(_ spec: String, seed: UInt64 = 0, inputShapes: [String: [Int]] = [:]) throws -> Graph {
        if isBranchConfig(spec) {
            let config = try MultiBranchConfig.load(path: spec)
            for note in config.notes { FileHandle.standardError.write(Data("note: \(spec): \(note)\n".utf8)) }
            return MultiBranchNetwork.build(config, seed: seed)
        }
        if isFile(spec) {
            return try ONNXImporter.load(URL(fileURLWithPath: spec), inputShapes: inputShapes)
        }
        return try Zoo.entry(named: spec).build(seed: seed)
    }

    /// An ONNX file's input names, read without importing the graph.
    static func inputNames(_ spec: String) throws -> [String] {
        try ONNXImporter.inputNames(URL(fileURLWithPath: spec))
    }
}
