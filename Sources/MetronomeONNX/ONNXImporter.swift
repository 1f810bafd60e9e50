import Foundation
import Metronome
import SwiftProtobuf

/// Reads ONNX models into a ``Graph``.
///
/// Every operator the engine runs (``Program/supportedOperators``) is imported for opsets
/// 11–21; older opsets (6–10) are read too where their operators' legacy attributes have an
/// equivalent. Shape computations that exporters emit (Shape, Gather, Unsqueeze, Concat, ...
/// feeding Reshape) and subgraphs of constants are evaluated at import time, keeping a
/// symbolic batch dimension symbolic. Anything else is an error that names the node, the
/// operator and what is supported; nothing is skipped silently.
public enum ONNXImporter {
    /// The opsets the importer targets. Opsets 22–28 changed the operators Metronome runs
    /// only in the element types they accept (bfloat16, 2-, 4- and 8-bit and float8 types) and
    /// in attributes for those types (Cast's `round_mode` concerns float8e8m0 only, a type
    /// refused anyway; QuantizeLinear's `precision` is refused by name), so models declaring
    /// them are read too; newer opsets are refused.
    public static let opsets: ClosedRange<Int64> = 11...21
    public static let newestOpset: Int64 = 28
    /// The oldest opset accepted (legacy attributes are translated or refused node by node).
    public static let oldestOpset: Int64 = 6

    /// Operators the importer evaluates itself when their inputs are constants or shapes
    /// (Squeeze and Unsqueeze of computed data become Reshape).
    public static let importTimeOperators: [String] = [
        "Constant", "ConstantOfShape", "Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Cast",
        "Range", "ReduceProd",
    ]

    /// Every operator type a model may contain.
    public static var supportedOperators: [String] {
        Array(Set(Program.supportedOperators + importTimeOperators)).sorted()
    }

    /// Loads the model at `url`; external tensor data is read relative to its directory.
    /// `inputShapes` fixes the shapes of inputs with symbolic dimensions before shape
    /// computations are evaluated (needed when they depend on more than the batch size).
    public static func load(_ url: URL, inputShapes: [String: [Int]] = [:]) throws -> Graph {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MetronomeError.invalidArgument("no such file: \(url.path)")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MetronomeError.invalidArgument("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try parse(data, directory: url.deletingLastPathComponent(), source: url.lastPathComponent,
                         inputShapes: inputShapes)
    }

    public static func parse(_ data: Data, directory: URL? = nil, source: String = "model",
                             inputShapes: [String: [Int]] = [:]) throws -> Graph {
        let model: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            model = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw MetronomeError.invalidGraph("\(source) is not a valid ONNX model (protobuf decoding failed: \(error))")
        }
        guard model.hasGraph, !model.graph.node.isEmpty || !model.graph.output.isEmpty else {
            throw MetronomeError.invalidGraph("\(source) contains no graph (is it an ONNX model?)")
        }
        var opset: Int64 = 0
        for o in model.opsetImport {
            if o.domain.isEmpty || o.domain == "ai.onnx" { opset = o.version }
        }
        guard opset != 0 else { throw MetronomeError.invalidGraph("\(source) declares no ai.onnx opset") }
        guard opset >= oldestOpset && opset <= newestOpset else {
            throw MetronomeError.invalidGraph(
                "\(source) uses opset \(opset); Metronome reads opsets \(opsets.lowerBound)–\(newestOpset) (and \(oldestOpset)–\(opsets.lowerBound - 1) where legacy attributes translate)")
        }
        try checkOperators(model.graph)
        var reader = GraphReader(proto: model.graph, opset: Int(opset), source: source,
                                 decoder: TensorDecoder(directory: directory), inputShapes: inputShapes)
        return try reader.read()
    }
}

extension ONNXImporter {
    /// The names of the model's run-time inputs (graph inputs that are not initializers),
    /// read without importing the graph.
    public static func inputNames(_ url: URL) throws -> [String] {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MetronomeError.invalidArgument("no such file: \(url.path)")
        }
        let model: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            model = try Onnx_ModelProto(serializedBytes: try Data(contentsOf: url), options: options)
        } catch {
            throw MetronomeError.invalidGraph("\(url.lastPathComponent) is not a valid ONNX model (protobuf decoding failed: \(error))")
        }
        try checkOperators(model.graph)
        let initializers = Set(model.graph.initializer.map(\.name))
        return model.graph.input.map(\.name).filter { !initializers.contains($0) }
    }

    /// Refuses the first node whose operator is not supported, before anything else is read.
    static func checkOperators(_ graph: Onnx_GraphProto) throws {
        let supported = Set(supportedOperators)
        for (i, n) in graph.node.enumerated() {
            let name = n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
            let domainOK = n.domain.isEmpty || n.domain == "ai.onnx"
            guard domainOK && supported.contains(n.opType) else {
                throw MetronomeError.unsupportedOperator(node: name, op: domainOK ? n.opType : "\(n.domain).\(n.opType)",
                                                         supported: supportedOperators)
            }
        }
    }
}
