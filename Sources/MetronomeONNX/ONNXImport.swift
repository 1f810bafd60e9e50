import Foundation
import Metronome
import SwiftProtobuf

/// Reads ONNX models (opsets 11 and later) into a ``Graph``.
public enum ONNXImporter {
    /// Loads the model at `url`; external tensor data is read relative to its directory.
    public static func load(_ url: URL) throws -> Graph {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MetronomeError.invalidArgument("no such file: \(url.path)")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MetronomeError.invalidArgument("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try parse(data, directory: url.deletingLastPathComponent(), source: url.lastPathComponent)
    }

    public static func parse(_ data: Data, directory: URL? = nil, source: String = "model") throws -> Graph {
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw MetronomeError.invalidGraph("\(source) is not a valid ONNX model (protobuf decoding failed: \(error))")
        }
        guard model.hasGraph else { throw MetronomeError.invalidGraph("\(source) contains no graph") }
        let opset = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        if opset != 0 && opset < 7 {
            throw MetronomeError.invalidGraph("\(source) uses opset \(opset); opsets 7 and later are supported")
        }
        var reader = GraphReader(proto: model.graph, directory: directory, source: source)
        return try reader.read()
    }
}

private struct GraphReader {
    let proto: Onnx_GraphProto
    let directory: URL?
    let source: String
    var graph: Graph

    init(proto: Onnx_GraphProto, directory: URL?, source: String) {
        self.proto = proto
        self.directory = directory
        self.source = source
        graph = Graph(name: proto.name.isEmpty ? source : proto.name)
    }

    mutating func read() throws -> Graph {
        for t in proto.initializer { try addConstant(t, name: t.name) }
        for v in proto.input where graph.initializers[v.name] == nil && graph.integerConstants[v.name] == nil {
            guard v.type.tensorType.elemType == Int32(Onnx_TensorProto.DataType.float.rawValue) else {
                throw MetronomeError.invalidGraph("input '\(v.name)': only float32 inputs are supported")
            }
            let dims = v.type.tensorType.shape.dim.map { d -> Int in
                if case .dimValue(let n)? = d.value, n > 0 { return Int(n) }
                return -1
            }
            graph.inputs.append(ValueInfo(name: v.name, shape: dims))
        }
        for (i, n) in proto.node.enumerated() {
            let name = n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
            guard n.domain.isEmpty || n.domain == "ai.onnx" else {
                throw MetronomeError.unsupportedOperator(node: name, op: "\(n.domain).\(n.opType)",
                                                         supported: Program.supportedOperators)
            }
            if n.opType == "Constant" {
                try readConstantNode(n, name: name)
                continue
            }
            var attributes: [String: Attribute] = [:]
            for a in n.attribute {
                attributes[a.name] = try attribute(a, node: name, op: n.opType)
            }
            graph.nodes.append(Node(name: name, opType: n.opType, inputs: n.input, outputs: n.output,
                                    attributes: attributes))
        }
        graph.outputs = proto.output.map(\.name)
        return graph
    }

    func attribute(_ a: Onnx_AttributeProto, node: String, op: String) throws -> Attribute {
        switch a.type {
        case .int: return .int(Int(a.i))
        case .ints: return .ints(a.ints.map { Int($0) })
        case .float: return .float(a.f)
        case .floats: return .floats(a.floats)
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        default:
            throw MetronomeError.node(node: node, op: op,
                                      message: "attribute '\(a.name)' has unsupported type \(a.type)")
        }
    }

    mutating func readConstantNode(_ n: Onnx_NodeProto, name: String) throws {
        guard n.output.count == 1, let a = n.attribute.first else {
            throw MetronomeError.node(node: name, op: "Constant", message: "needs exactly one value attribute and one output")
        }
        let out = n.output[0]
        switch a.name {
        case "value": try addConstant(a.t, name: out)
        case "value_float": graph.initializers[out] = Tensor(shape: [], repeating: a.f)
        case "value_floats": graph.initializers[out] = try Tensor(shape: [a.floats.count], scalars: a.floats)
        case "value_int": graph.integerConstants[out] = [Int(a.i)]
        case "value_ints": graph.integerConstants[out] = a.ints.map { Int($0) }
        default:
            throw MetronomeError.node(node: name, op: "Constant", message: "unsupported value attribute '\(a.name)'")
        }
    }

    /// Raw bytes of a tensor: inline raw_data, or external data next to the model.
    func rawBytes(_ t: Onnx_TensorProto, name: String) throws -> Data? {
        if t.dataLocation == .external {
            let entries = Dictionary(t.externalData.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            guard let location = entries["location"], let directory else {
                throw MetronomeError.invalidGraph("tensor '\(name)': external data without a location")
            }
            let url = directory.appendingPathComponent(location)
            guard !location.contains(".."), let handle = try? FileHandle(forReadingFrom: url) else {
                throw MetronomeError.invalidGraph("tensor '\(name)': cannot open external data file \(url.path)")
            }
            defer { try? handle.close() }
            let offset = UInt64(entries["offset"].flatMap { UInt64($0) } ?? 0)
            try handle.seek(toOffset: offset)
            if let length = entries["length"].flatMap({ Int($0) }) {
                let d = try handle.read(upToCount: length) ?? Data()
                guard d.count == length else { throw MetronomeError.invalidGraph("tensor '\(name)': external data is truncated") }
                return d
            }
            return try handle.readToEnd() ?? Data()
        }
        return t.hasRawData ? t.rawData : nil
    }

    mutating func addConstant(_ t: Onnx_TensorProto, name: String) throws {
        let shape = t.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw MetronomeError.invalidGraph("tensor '\(name)' has negative dimensions \(shape)") }
        let count = shape.reduce(1, *)
        let raw = try rawBytes(t, name: name)
        func check(_ n: Int) throws {
            guard n == count else {
                throw MetronomeError.invalidGraph("tensor '\(name)' of shape \(shape) holds \(n) values instead of \(count)")
            }
        }
        switch Onnx_TensorProto.DataType(rawValue: Int(t.dataType)) {
        case .float?:
            var values: [Float]
            if let raw {
                try check(raw.count / 4)
                guard raw.count == count * 4 else { throw MetronomeError.invalidGraph("tensor '\(name)': raw data size \(raw.count) is not \(count * 4)") }
                values = [Float](repeating: 0, count: count)
                _ = values.withUnsafeMutableBytes { raw.copyBytes(to: $0) }
            } else {
                values = t.floatData
                try check(values.count)
            }
            graph.initializers[name] = try Tensor(shape: shape, scalars: values)
        case .double?:
            var values: [Double]
            if let raw {
                guard raw.count == count * 8 else { throw MetronomeError.invalidGraph("tensor '\(name)': raw data size \(raw.count) is not \(count * 8)") }
                values = [Double](repeating: 0, count: count)
                _ = values.withUnsafeMutableBytes { raw.copyBytes(to: $0) }
            } else {
                values = t.doubleData
                try check(values.count)
            }
            graph.initializers[name] = try Tensor(shape: shape, scalars: values.map { Float($0) })
        case .int64?:
            var values: [Int64]
            if let raw {
                guard raw.count == count * 8 else { throw MetronomeError.invalidGraph("tensor '\(name)': raw data size \(raw.count) is not \(count * 8)") }
                values = [Int64](repeating: 0, count: count)
                _ = values.withUnsafeMutableBytes { raw.copyBytes(to: $0) }
            } else {
                values = t.int64Data
                try check(values.count)
            }
            graph.integerConstants[name] = values.map { Int(clamping: $0) }
        case .int32?:
            var values: [Int32]
            if let raw {
                guard raw.count == count * 4 else { throw MetronomeError.invalidGraph("tensor '\(name)': raw data size \(raw.count) is not \(count * 4)") }
                values = [Int32](repeating: 0, count: count)
                _ = values.withUnsafeMutableBytes { raw.copyBytes(to: $0) }
            } else {
                values = t.int32Data
                try check(values.count)
            }
            graph.integerConstants[name] = values.map { Int($0) }
        default:
            throw MetronomeError.invalidGraph("tensor '\(name)' has unsupported data type \(t.dataType); float, double, int32 and int64 are supported")
        }
    }
}
