import Foundation
import Metronome
import SwiftProtobuf

/// Writes a ``Graph`` as an ONNX model (opset 17), so that Metronome's models and
/// transformed graphs run in other runtimes. Each operator says how it is written
/// (``Node/exportedToONNX(_:)``); this file only builds the protobuf messages.
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
        var context = ONNXExportContext(integerConstants: graph.integerConstants, initializers: graph.initializers)
        for node in graph.nodes {
            g.node.append(contentsOf: try node.exportedToONNX(&context).map {
                nodeProto($0.name, $0.opType, $0.inputs, $0.outputs, $0.attributes)
            })
        }
        // An initializer an exported node no longer reads (quantized weights, rewritten in
        // their integer type by DequantizeLinear's export) is left out.
        let read = Set(g.node.flatMap(\.input))
        for name in graph.initializers.keys.sorted() where read.contains(name) {
            g.initializer.append(tensorProto(name: name, graph.initializers[name]!))
        }
        for name in graph.integerConstants.keys.sorted() {
            g.initializer.append(int64Proto(name: name, graph.integerConstants[name]!))
        }
        // Parameters that operators moved from attributes to inputs, in the order they were made.
        for (name, constant) in context.constants {
            switch constant {
            case .float(let t): g.initializer.append(tensorProto(name: name, t))
            case .int64(let v): g.initializer.append(int64Proto(name: name, v))
            case .integers(let v, let shape, let type): g.initializer.append(integerProto(name: name, v, shape: shape, type: type))
            }
        }
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

    /// An int8, uint8 or int32 tensor (quantized weights and zero points), as raw data.
    static func integerProto(name: String, _ values: [Int], shape: [Int], type: QuantizedType) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dims = shape.map(Int64.init)
        switch type {
        case .int8:
            p.dataType = Int32(Onnx_TensorProto.DataType.int8.rawValue)
            p.rawData = Data(values.map { UInt8(bitPattern: Int8(clamping: $0)) })
        case .uint8:
            p.dataType = Int32(Onnx_TensorProto.DataType.uint8.rawValue)
            p.rawData = Data(values.map { UInt8(clamping: $0) })
        case .int32:
            p.dataType = Int32(Onnx_TensorProto.DataType.int32.rawValue)
            p.rawData = values.map { Int32(clamping: $0).littleEndian }.withUnsafeBufferPointer { Data(buffer: $0) }
        }
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
}
