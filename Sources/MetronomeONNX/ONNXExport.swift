import Foundation
import Metronome
import SwiftProtobuf

/// Writes a ``Graph`` as an ONNX model (opset 17), so that Metronome's models and
/// transformed graphs run in other runtimes.
public enum ONNXExporter {
    public static let opset: Int64 = 17

    public static func model(_ graph: Graph) throws -> Onnx_ModelProto {
        var model = Onnx_ModelProto()
        model.irVersion = 8
        model.producerName = "metronome"
        var op = Onnx_OperatorSetIdProto()
        op.domain = ""
        op.version = opset
        model.opsetImport = [op]
        model.graph = try graphProto(graph)
        return model
    }

    public static func serialize(_ graph: Graph) throws -> Data {
        try model(graph).serializedData()
    }

    /// Writes the model to `url`, refusing to replace an existing file unless `overwrite`.
    public static func write(_ graph: Graph, to url: URL, overwrite: Bool = false) throws {
        if !overwrite && FileManager.default.fileExists(atPath: url.path) {
            throw MetronomeError.invalidArgument("\(url.path) already exists; pass --force to overwrite it")
        }
        try serialize(graph).write(to: url)
    }

    static func graphProto(_ graph: Graph) throws -> Onnx_GraphProto {
        var g = Onnx_GraphProto()
        g.name = graph.name
        var extraInitializers: [Onnx_TensorProto] = []
        var counter = 0
        func freshName(_ base: String) -> String {
            counter += 1
            return "\(base)__export\(counter)"
        }
        for node in graph.nodes {
            g.node.append(contentsOf: try translate(node, graph: graph, fresh: freshName, extra: &extraInitializers))
        }
        for name in graph.initializers.keys.sorted() {
            g.initializer.append(tensorProto(name: name, graph.initializers[name]!))
        }
        for name in graph.integerConstants.keys.sorted() {
            g.initializer.append(int64Proto(name: name, graph.integerConstants[name]!))
        }
        g.initializer.append(contentsOf: extraInitializers)
        g.input = graph.inputs.map { valueInfo($0.name, shape: $0.shape) }
        // Output shapes come from lowering at batch 1; a symbolic batch stays symbolic.
        // Other symbolic dimensions leave the output shapes unstated.
        let symbolicBatch = graph.inputs.contains { $0.shape.first.map { $0 < 0 } ?? false }
        let otherSymbolic = graph.inputs.contains { $0.shape.dropFirst().contains { $0 < 0 } }
        if otherSymbolic {
            g.output = graph.outputs.map { valueInfo($0, shape: nil) }
        } else {
            let program = try Program(lowering: graph, batch: symbolicBatch ? 1 : nil)
            g.output = zip(graph.outputs, program.outputs).map { name, id in
                var shape = program.shape(id)
                if symbolicBatch && !shape.isEmpty { shape[0] = -1 }
                return valueInfo(name, shape: shape)
            }
        }
        return g
    }

    static func valueInfo(_ name: String, shape: [Int]?) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        if let shape {
            var s = Onnx_TensorShapeProto()
            s.dim = shape.enumerated().map { i, d in
                var dim = Onnx_TensorShapeProto.Dimension()
                if d < 0 { dim.dimParam = i == 0 ? "N" : "d\(i)" } else { dim.dimValue = Int64(d) }
                return dim
            }
            t.shape = s
        }
        var type = Onnx_TypeProto()
        type.tensorType = t
        v.type = type
        return v
    }

    static func tensorProto(name: String, _ t: Tensor) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dims = t.shape.map(Int64.init)
        p.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        p.rawData = t.scalars.withUnsafeBufferPointer { Data(buffer: $0) }  // little-endian on x86-64/arm64
        return p
    }

    static func int64Proto(name: String, _ values: [Int]) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dims = [Int64(values.count)]
        p.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        p.int64Data = values.map(Int64.init)
        return p
    }

    static func attribute(_ name: String, _ a: Attribute) -> Onnx_AttributeProto {
        var p = Onnx_AttributeProto()
        p.name = name
        switch a {
        case .int(let v): p.type = .int; p.i = Int64(v)
        case .ints(let v): p.type = .ints; p.ints = v.map(Int64.init)
        case .float(let v): p.type = .float; p.f = v
        case .floats(let v): p.type = .floats; p.floats = v
        case .string(let v): p.type = .string; p.s = Data(v.utf8)
        }
        return p
    }

    static func nodeProto(_ name: String, _ opType: String, _ inputs: [String], _ outputs: [String],
                          _ attributes: [String: Attribute]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.name = name
        n.opType = opType
        n.input = inputs
        n.output = outputs
        n.attribute = attributes.keys.sorted().map { attribute($0, attributes[$0]!) }
        return n
    }

    /// Maps one IR node to opset-17 nodes: operators without an opset-17 form are decomposed,
    /// and parameters that opset 17 takes as inputs are moved out of attributes.
    static func translate(_ node: Node, graph: Graph, fresh: (String) -> String,
                          extra: inout [Onnx_TensorProto]) throws -> [Onnx_NodeProto] {
        var attrs = node.attributes
        var inputs = node.inputs
        switch node.opType {
        case "Silu", "Swish":
            let s = fresh(node.name + "_sigmoid")
            return [nodeProto(s, "Sigmoid", [inputs[0]], [s], [:]),
                    nodeProto(node.name, "Mul", [inputs[0], s], node.outputs, [:])]
        case "Clip":
            for (i, key) in [(1, "min"), (2, "max")] {
                guard let a = attrs.removeValue(forKey: key) else { continue }
                let value: Float
                switch a { case .float(let f): value = f; case .int(let v): value = Float(v); default: continue }
                let name = fresh(node.name + "_" + key)
                extra.append(tensorProto(name: name, Tensor(shape: [], repeating: value)))
                while inputs.count <= i { inputs.append("") }
                inputs[i] = name
            }
        case "Split":
            attrs["num_outputs"] = nil  // opset 18; in opset 17 the output count implies equal parts
            if let a = attrs.removeValue(forKey: "split"), case .ints(let sizes) = a {
                let name = fresh(node.name + "_split")
                extra.append(int64Proto(name: name, sizes))
                inputs = [inputs[0], name]
            }
        case "Slice":
            var params: [String] = []
            for key in ["starts", "ends", "axes"] {
                guard let a = attrs.removeValue(forKey: key), case .ints(let v) = a else { continue }
                let name = fresh(node.name + "_" + key)
                extra.append(int64Proto(name: name, v))
                params.append(name)
            }
            if !params.isEmpty { inputs = [inputs[0]] + params }
        case "Pad":
            if let a = attrs.removeValue(forKey: "pads"), case .ints(let v) = a {
                let name = fresh(node.name + "_pads")
                extra.append(int64Proto(name: name, v))
                inputs = [inputs[0], name] + (inputs.count > 2 ? Array(inputs[2...]) : [])
            }
            if let a = attrs.removeValue(forKey: "value") {
                var value: Float = 0
                if case .float(let f) = a { value = f }
                let name = fresh(node.name + "_value")
                extra.append(tensorProto(name: name, Tensor(shape: [], repeating: value)))
                while inputs.count < 2 { inputs.append("") }
                inputs = Array(inputs.prefix(2)) + [name]
            }
        case "BatchNormalization":
            for key in ["spatial", "is_test", "consumed_inputs"] { attrs[key] = nil }
        case "Dropout":
            // Opset 17 takes ratio and training_mode as inputs; neither matters at inference.
            attrs = [:]
            inputs = [inputs[0]]
        case "AveragePool":
            // AveragePool gained dilations only in opset 19; the engine runs only the undilated form.
            if let d = attrs["dilations"], d == .ints([1, 1]) { attrs["dilations"] = nil }
        default:
            break
        }
        return [nodeProto(node.name, node.opType, inputs, node.outputs, attrs)]
    }
}
