import Foundation
import Metronome
import SwiftProtobuf

/// Reads one ONNX graph into a ``Graph``: initializers, inputs and outputs, and node by node
/// either an import-time evaluation (GraphReader+ImportTimeEvaluation.swift), a legacy-opset
/// translation (GraphReader+LegacyOpsets.swift) or a run-time operator, which the engine's
/// operator registry checks when the graph is lowered.
struct GraphReader {
    let proto: Onnx_GraphProto
    let opset: Int
    let source: String
    let decoder: TensorDecoder
    let inputShapes: [String: [Int]]
    var graph: Graph
    /// Integer tensors known at import time (shape computations, constant parameters).
    var ints: [String: IntTensor] = [:]
    /// Values computed at run time (graph inputs and node outputs), all float32.
    var runtime: Set<String> = []
    /// Every value name some node or the graph output reads.
    var consumed: Set<String> = []
    var shapeCache: [String: [SymbolicDim]] = [:]
    /// Shapes of the values read so far; each node is lowered once for them.
    var shapes = SymbolicShapes()
    var counter = 0
    /// The ONNX element type of each integer constant (initializers, Constant nodes) and of
    /// each QuantizeLinear output: the integer type of a quantized value.
    var elementTypes: [String: Int32] = [:]

    init(proto: Onnx_GraphProto, opset: Int, source: String, decoder: TensorDecoder, inputShapes: [String: [Int]]) {
        self.proto = proto
        self.opset = opset
        self.source = source
        self.decoder = decoder
        self.inputShapes = inputShapes
        graph = Graph(name: proto.name.isEmpty ? source : proto.name)
    }

    mutating func freshName(_ base: String) -> String {
        counter += 1
        return "\(base)__import\(counter)"
    }

    // MARK: Graph

    mutating func read() throws -> Graph {
        for t in proto.initializer {
            guard !t.name.isEmpty else { throw MetronomeError.invalidGraph("\(source): an initializer has no name") }
            try store(try decoder.decode(t, name: t.name), as: t.name)
            elementTypes[t.name] = t.dataType
        }
        for v in proto.input where graph.initializers[v.name] == nil && ints[v.name] == nil {
            try addInput(v)
        }
        for n in proto.node { consumed.formUnion(n.input) }
        consumed.formUnion(proto.output.map(\.name))
        for (i, n) in proto.node.enumerated() { try process(n, index: i) }
        try readOutputs()
        pruneUnusedConstants()
        try validate()
        return graph
    }

    mutating func store(_ t: DecodedTensor, as name: String) throws {
        switch t {
        case .float(let tensor): graph.initializers[name] = tensor
        case .int(let i): ints[name] = i
        }
    }

    mutating func addInput(_ v: Onnx_ValueInfoProto) throws {
        guard case .tensorType? = v.type.value else {
            throw MetronomeError.invalidGraph("\(source): input '\(v.name)' is not a tensor; only float32 tensor inputs are supported")
        }
        let elem = v.type.tensorType.elemType
        guard elem == Int32(Onnx_TensorProto.DataType.float.rawValue) else {
            throw MetronomeError.invalidGraph(
                "\(source): input '\(v.name)' has element type \(dataTypeName(elem)); Metronome computes float32 only")
        }
        var dims: [Int]? = nil
        if v.type.tensorType.hasShape {
            dims = v.type.tensorType.shape.dim.map { d -> Int in
                if case .dimValue(let n)? = d.value, n >= 0 { return Int(n) }
                return -1
            }
        }
        if let given = inputShapes[v.name] {
            if let dims {
                guard given.count == dims.count, zip(given, dims).allSatisfy({ $1 < 0 || $0 == $1 }) else {
                    throw MetronomeError.inputShape(name: v.name, expected: dims, actual: given)
                }
            }
            dims = given
        }
        guard let dims else {
            throw MetronomeError.invalidGraph("\(source): input '\(v.name)' declares no shape; give its shape (e.g. run it with `metronome infer`)")
        }
        graph.inputs.append(ValueInfo(name: v.name, shape: dims))
        runtime.insert(v.name)
    }

    mutating func readOutputs() throws {
        for o in proto.output {
            let name = o.name
            if runtime.contains(name) {
                graph.outputs.append(name)
            } else if let t = graph.initializers[name] {
                // A constant output: computed at import time (e.g. a folded subgraph).
                let constName = freshName(name)
                graph.initializers[constName] = t
                graph.initializers[name] = nil
                graph.nodes.append(Node(name: freshName("output_" + name), opType: "Identity", inputs: [constName], outputs: [name]))
                graph.outputs.append(name)
            } else if ints[name] != nil {
                throw MetronomeError.invalidGraph(
                    "\(source): graph output '\(name)' is an integer tensor; Metronome's outputs are float32 only")
            } else {
                throw MetronomeError.invalidGraph("\(source): graph output '\(name)' is not produced by any node")
            }
        }
        guard !graph.outputs.isEmpty else { throw MetronomeError.invalidGraph("\(source): the graph has no outputs") }
    }

    /// Lowers the graph once (shape inference only) so that an unsupported attribute or an
    /// inconsistent shape is reported when the model is read, not when it is first run.
    /// Inputs with dynamic dimensions other than the batch are checked when shapes are known.
    func validate() throws {
        guard graph.inputs.allSatisfy({ !$0.shape.dropFirst().contains { $0 < 0 } }) else { return }
        var shapes: [String: [Int]] = [:]
        for i in graph.inputs where i.shape.first.map({ $0 < 0 }) ?? false { shapes[i.name] = [1] + i.shape.dropFirst() }
        _ = try Program(lowering: graph, inputShapes: shapes)
    }

    mutating func pruneUnusedConstants() {
        var used = Set<String>()
        for n in graph.nodes { used.formUnion(n.inputs) }
        for k in Array(graph.initializers.keys) where !used.contains(k) { graph.initializers[k] = nil }
        for k in Array(graph.integerConstants.keys) where !used.contains(k) { graph.integerConstants[k] = nil }
    }

    // MARK: Nodes

    func fail(_ node: Node, _ message: String) -> MetronomeError {
        .node(node: node.name, op: node.opType, message: message)
    }

    func unsupported(_ node: Node) -> MetronomeError {
        .unsupportedOperator(node: node.name, op: node.opType, supported: ONNXImporter.supportedOperators)
    }

    func attribute(_ a: Onnx_AttributeProto, node: String, op: String) throws -> Attribute? {
        var type = a.type
        if type == .undefined {  // very old models leave the type out
            if a.hasF { type = .float } else if a.hasI { type = .int } else if a.hasS { type = .string }
            else if !a.ints.isEmpty { type = .ints } else if !a.floats.isEmpty { type = .floats }
            else if a.hasT { type = .tensor }
        }
        switch type {
        case .int: return .int(Int(clamping: a.i))
        case .ints: return .ints(a.ints.map { Int(clamping: $0) })
        case .float: return .float(a.f)
        case .floats: return .floats(a.floats)
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .tensor: return nil
        default:
            throw MetronomeError.node(node: node, op: op,
                                      message: "attribute '\(a.name)' has type \(a.type), which is not supported (int, ints, float, floats, string and tensor are)")
        }
    }

    mutating func process(_ n: Onnx_NodeProto, index: Int) throws {
        let name = n.name.isEmpty ? "\(n.opType)_\(index)" : n.name
        guard n.domain.isEmpty || n.domain == "ai.onnx" else {
            throw MetronomeError.unsupportedOperator(node: name, op: "\(n.domain).\(n.opType)",
                                                     supported: ONNXImporter.supportedOperators)
        }
        var attributes: [String: Attribute] = [:]
        var tensors: [String: Onnx_TensorProto] = [:]
        for a in n.attribute {
            if let v = try attribute(a, node: name, op: n.opType) { attributes[a.name] = v } else { tensors[a.name] = a.t }
        }
        let node = Node(name: name, opType: n.opType, inputs: n.input, outputs: n.output, attributes: attributes)
        // Every operator Metronome reads produces a first output, and all but Constant read a
        // first input; the handlers below rely on both (found by fuzz-onnx: a ConstantOfShape
        // without outputs trapped on `outputs[0]`).
        guard let first = node.outputs.first, !first.isEmpty else { throw fail(node, "has no output") }
        guard node.opType == "Constant" || node.inputs.first.map({ !$0.isEmpty }) == true else {
            throw fail(node, "has no first input")
        }
        for input in node.inputs where !input.isEmpty {
            guard isDefined(input) else {
                throw fail(node, "input '\(input)' is not a graph input, an initializer or the output of an earlier node (is the graph topologically sorted?)")
            }
        }
        if !tensors.isEmpty && node.opType != "Constant" && node.opType != "ConstantOfShape" {
            throw fail(node, "tensor-valued attribute '\(tensors.keys.sorted()[0])' is not supported")
        }
        try handle(node, tensors: tensors)
    }

    func isDefined(_ v: String) -> Bool { runtime.contains(v) || graph.initializers[v] != nil || ints[v] != nil }
    func input(_ node: Node, _ i: Int) -> String? { i < node.inputs.count && !node.inputs[i].isEmpty ? node.inputs[i] : nil }
    func isConstant(_ v: String) -> Bool { graph.initializers[v] != nil || ints[v] != nil }

    func intAttr(_ node: Node, _ key: String) throws -> Int? {
        switch node.attributes[key] {
        case nil: return nil
        case .int(let v)?: return v
        default: throw fail(node, "attribute '\(key)' must be an integer")
        }
    }

    func intsAttr(_ node: Node, _ key: String) throws -> [Int]? {
        switch node.attributes[key] {
        case nil: return nil
        case .ints(let v)?: return v
        case .int(let v)?: return [v]
        default: throw fail(node, "attribute '\(key)' must be a list of integers")
        }
    }

    /// An integer constant input (axes, indices, shape), which must not depend on the batch.
    func constantInts(_ node: Node, _ i: Int, what: String) throws -> [Int]? {
        guard let v = input(node, i) else { return nil }
        if let t = ints[v] {
            guard let c = t.constants else { throw fail(node, "\(what) '\(v)' = \(t.values) depends on the batch size; it must be constant") }
            return c
        }
        if let t = graph.initializers[v] { return try integers(t, node, what: "\(what) '\(v)'") }
        throw fail(node, "\(what) (input '\(v)') must be a constant; computed \(what) is not supported")
    }

    /// A float tensor's values as integers; NaN, infinities and values beyond 64 bits are
    /// errors (Swift's `Int(Float)` would trap on them).
    func integers(_ t: Tensor, _ node: Node, what: String) throws -> [Int] {
        try t.scalars.map { f in
            guard let i = Int(exactly: f.rounded(.towardZero)) else {
                throw fail(node, "\(what) holds \(f), which is not a 64-bit integer")
            }
            return i
        }
    }

    mutating func emit(_ node: Node) {
        graph.nodes.append(node)
        for o in node.outputs where !o.isEmpty { runtime.insert(o) }
    }

    /// Dispatches one node. This switch names ONNX operators on purpose: it routes the
    /// import-time evaluations (which never reach the engine) and the legacy-opset
    /// translations (which need the importer's state); every other operator goes to
    /// ``generic(_:)`` if the engine's operator registry knows it.
    mutating func handle(_ original: Node, tensors: [String: Onnx_TensorProto]) throws {
        var node = original
        let op = node.opType
        if try isOneDimensional(node) { return try oneDimensional(node) }
        if try isOneDimensionalMatMul(node) { return try oneDimensionalMatMul(node) }
        let anyInt = node.inputs.contains { ints[$0] != nil }
        switch op {
        case "Constant":
            try constantNode(node, tensors: tensors)
        case "ConstantOfShape":
            try constantOfShape(node, tensors: tensors)
        case "Shape":
            try evaluateShape(node)
        case "Size":
            try evaluateSize(node)
        case "Gather":
            try gather(node)
        case "Unsqueeze", "Squeeze":
            try squeeze(node)
        case "Cast":
            try cast(node)
        case "Identity" where isConstant(node.inputs[0]):
            try constantIdentity(node)
        case "Range":
            try evaluateRange(node)
        case "ReduceProd" where input(node, 0).map({ ints[$0] != nil }) ?? false:
            // A product of shape values (an element count) is computed now; of data, at run time.
            try evaluateReduceProd(node)
        case "Add" where anyInt, "Sub" where anyInt, "Mul" where anyInt, "Div" where anyInt:
            try integerArithmetic(node)
        case "Concat" where anyInt:
            try integerConcat(node)
        case "Slice" where input(node, 0).map({ ints[$0] != nil }) ?? false:
            try integerSlice(node)
        case "Reshape":
            try reshape(node)
        case "Softmax" where opset < 13:
            try legacySoftmax(node)
        case "Dropout":
            node = try dropout(node)
            try generic(node)
        case "BatchNormalization":
            for key in ["is_test", "consumed_inputs"] { node.attributes[key] = nil }
            node = try dropUnusedOutputs(node, keeping: 1, what: "running mean and variance (training) outputs")
            try generic(node)
        case "MaxPool":
            node = try dropUnusedOutputs(node, keeping: 1, what: "Indices output")
            try generic(node)
        case "PRelu" where opset < 7:
            try generic(try legacyPRelu(node))
        case "LayerNormalization":
            // Mean and InvStdDev are computed when something reads them; unread ones are dropped.
            while node.outputs.count > 1, let last = node.outputs.last, last.isEmpty || !consumed.contains(last) {
                node.outputs.removeLast()
            }
            try generic(node)
        case "Add", "Sub", "Mul", "Div", "Gemm":
            if opset < 7 { node = try legacyBroadcast(node) }
            try generic(node)
        case "Pad" where input(node, 3) != nil:
            try padWithAxes(node)
        case "QuantizeLinear", "DequantizeLinear":
            try quantizationNode(node)
        case "Resize" where hasBatchDependentSizes(node):
            try resizeWithBatchDependentSizes(node)
        default:
            guard Program.supportedOperators.contains(op) else { throw unsupported(node) }
            try generic(node)
        }
    }

    /// A run-time operator: parameters become integer constants, data stays float; a node
    /// whose inputs are all constant is evaluated now with the reference kernels.
    mutating func generic(_ node: Node) throws {
        let params = Program.parameterInputs(of: node.opType)
        for (i, v) in node.inputs.enumerated() where !v.isEmpty {
            guard let t = ints[v] else { continue }
            guard params.contains(i) else {
                throw fail(node, "input '\(v)' is an integer tensor; Metronome computes float32 data only")
            }
            guard let c = t.constants else {
                throw fail(node, "input '\(v)' = \(t.values) depends on the batch size, which Metronome cannot express here; pass concrete input shapes")
            }
            guard t.shape.count <= 1 else { throw fail(node, "input '\(v)' must be one-dimensional, has shape \(t.shape)") }
            graph.integerConstants[v] = c
        }
        let present = node.inputs.filter { !$0.isEmpty }
        if !present.isEmpty && present.allSatisfy(isConstant) {
            try fold(node)
        } else {
            emit(node)
        }
    }

    /// Evaluates a node whose inputs are all constants and records its outputs as initializers.
    mutating func fold(_ node: Node) throws {
        var mini = Graph(name: node.name, nodes: [node])
        for v in node.inputs where !v.isEmpty {
            if let t = graph.initializers[v] { mini.initializers[v] = t }
            if let c = graph.integerConstants[v] { mini.integerConstants[v] = c }
        }
        mini.outputs = node.outputs.filter { !$0.isEmpty }
        let program = try Program(lowering: mini)
        let results = try ReferenceRunner(program: program).run([])
        for (name, t) in zip(mini.outputs, results) { graph.initializers[name] = t }
    }
}
