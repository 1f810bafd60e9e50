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
    /// The opsets the importer targets. Opsets 22–25 changed the operators Metronome runs
    /// only in the element types they accept (bfloat16, 4-bit and 8-bit types), so models
    /// declaring them are read too; newer opsets are refused.
    public static let opsets: ClosedRange<Int64> = 11...21
    public static let newestOpset: Int64 = 25
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

private struct GraphReader {
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
                if case .dimValue(let n)? = d.value, n > 0 { return Int(n) }
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

    /// Inputs whose position is a parameter (shape, bounds, sizes, pads) rather than data.
    static let parameterInputs: [String: Set<Int>] = [
        "Reshape": [1], "Slice": [1, 2, 3, 4], "Split": [1], "Pad": [1, 3], "Clip": [1, 2],
    ]

    mutating func handle(_ original: Node, tensors: [String: Onnx_TensorProto]) throws {
        var node = original
        let op = node.opType
        let anyInt = node.inputs.contains { ints[$0] != nil }
        switch op {
        case "Constant":
            try constantNode(node, tensors: tensors)
        case "ConstantOfShape":
            guard let dims = try constantInts(node, 0, what: "shape") else { throw fail(node, "missing shape input") }
            let count = try foldedCount(dims, node, what: "shape")
            var fill = DecodedTensor.float(Tensor(shape: [1], repeating: 0))
            if let t = tensors["value"] { fill = try decoder.decode(t, name: node.name + ".value") }
            switch fill {
            case .float(let t):
                guard t.count == 1 else { throw fail(node, "value must hold one element") }
                graph.initializers[node.outputs[0]] = Tensor(shape: dims, repeating: t.scalars[0])
            case .int(let t):
                guard t.values.count == 1 else { throw fail(node, "value must hold one element") }
                ints[node.outputs[0]] = IntTensor(shape: dims, values: Array(repeating: t.values[0], count: count))
            }
        case "Shape":
            guard let x = input(node, 0) else { throw fail(node, "missing input") }
            let shape = try symbolicShape(x, for: node)
            let r = shape.count
            func clampIndex(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
            let start = clampIndex(try intAttr(node, "start") ?? 0)
            let end = clampIndex(try intAttr(node, "end") ?? r)
            let part = start < end ? Array(shape[start..<end]) : []
            ints[node.outputs[0]] = IntTensor(shape: [part.count], values: part)
        case "Size":
            guard let x = input(node, 0) else { throw fail(node, "missing input") }
            guard let total = try product(try symbolicShape(x, for: node)) else {
                throw fail(node, "the element count is not linear in the batch size")
            }
            ints[node.outputs[0]] = IntTensor(shape: [], values: [total])
        case "Gather":
            try gather(node)
        case "Unsqueeze", "Squeeze":
            try squeeze(node)
        case "Cast":
            try cast(node)
        case "Identity" where isConstant(node.inputs[0]):
            if let t = ints[node.inputs[0]] { ints[node.outputs[0]] = t }
            if let t = graph.initializers[node.inputs[0]] { graph.initializers[node.outputs[0]] = t }
        case "Range":
            guard let s = try constantInts(node, 0, what: "start"), let l = try constantInts(node, 1, what: "limit"),
                  let d = try constantInts(node, 2, what: "delta"), s.count == 1, l.count == 1, d.count == 1, d[0] != 0 else {
                throw fail(node, "Range is evaluated only on constant integer scalars")
            }
            // ceil((limit - start) / delta) elements, computed without overflow; never truncated.
            let (span, spanOverflow) = l[0].subtractingReportingOverflow(s[0])
            guard !spanOverflow else { throw fail(node, "Range(\(s[0]), \(l[0]), \(d[0])) overflows 64-bit integers") }
            let count = (span > 0) != (d[0] > 0) || span == 0 ? 0 : span / d[0] + (span % d[0] != 0 ? 1 : 0)
            guard count <= Self.maxFoldedElements else {
                throw fail(node, "Range(\(s[0]), \(l[0]), \(d[0])) has \(count) elements, more than the \(Self.maxFoldedElements) evaluated at import time")
            }
            // Every value lies between start and limit, so s + i·d does not overflow.
            ints[node.outputs[0]] = IntTensor(shape: [count], ints: (0..<count).map { s[0] + $0 * d[0] })
        case "ReduceProd":
            guard let x = input(node, 0), let t = ints[x] else {
                throw fail(node, "ReduceProd is evaluated only on integer shape values; it is not a run-time operator")
            }
            guard t.shape.count <= 1, (try intsAttr(node, "axes") ?? [0]).allSatisfy({ $0 == 0 || $0 == -1 }) else {
                throw fail(node, "only the full product of a 1-D shape value is supported")
            }
            guard let p = try product(t.values) else { throw fail(node, "the product is not linear in the batch size") }
            let keep = try intAttr(node, "keepdims") ?? 1
            ints[node.outputs[0]] = IntTensor(shape: keep != 0 ? [1] : [], values: [p])
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
        case "Add", "Sub", "Mul", "Div", "Gemm":
            if opset < 7 { node = try legacyBroadcast(node) }
            try generic(node)
        case "Pad" where input(node, 3) != nil:
            try padWithAxes(node)
        default:
            guard Program.supportedOperators.contains(op) else { throw unsupported(node) }
            try generic(node)
        }
    }

    /// A run-time operator: parameters become integer constants, data stays float; a node
    /// whose inputs are all constant is evaluated now with the reference kernels.
    mutating func generic(_ node: Node) throws {
        let params = Self.parameterInputs[node.opType] ?? []
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

    mutating func dropUnusedOutputs(_ node: Node, keeping count: Int, what: String) throws -> Node {
        var node = node
        guard node.outputs.count > count else { return node }
        for extra in node.outputs[count...] where !extra.isEmpty && consumed.contains(extra) {
            throw fail(node, "the \(what) ('\(extra)') is not supported at inference")
        }
        node.outputs = Array(node.outputs.prefix(count))
        return node
    }

    mutating func dropout(_ node: Node) throws -> Node {
        var node = node
        if let v = input(node, 2) {
            let mode = try constantInts(node, 2, what: "training_mode") ?? []
            guard mode.allSatisfy({ $0 == 0 }) else { throw fail(node, "training_mode = true is not supported at inference") }
            _ = v
        }
        if let isTest = try intAttr(node, "is_test"), isTest == 0, opset < 7 {
            throw fail(node, "is_test = 0 (training) is not supported at inference")
        }
        node.attributes = [:]  // ratio, seed and is_test have no effect at inference
        node.inputs = [node.inputs[0]]
        return try dropUnusedOutputs(node, keeping: 1, what: "mask output")
    }

    /// Opset 6 binary operators and Gemm broadcast with `broadcast = 1` and an optional axis.
    mutating func legacyBroadcast(_ node: Node) throws -> Node {
        var node = node
        let broadcast = try intAttr(node, "broadcast") ?? 0
        node.attributes["broadcast"] = nil
        guard let axis = try intAttr(node, "axis") else { return node }
        node.attributes["axis"] = nil
        guard broadcast != 0, node.opType != "Gemm", let b = input(node, 1) else { return node }
        let aShape = try symbolicShape(node.inputs[0], for: node)
        let bShape = try symbolicShape(b, for: node)
        let a = axis < 0 ? axis + aShape.count : axis
        if a + bShape.count == aShape.count { return node }  // same as NumPy broadcasting
        guard let t = graph.initializers[b], a >= 0, a + t.rank <= aShape.count else {
            throw fail(node, "legacy broadcasting along axis \(axis) is supported only for a constant second input")
        }
        let renamed = freshName(b)
        graph.initializers[renamed] = try Tensor(shape: t.shape + Array(repeating: 1, count: aShape.count - a - t.rank),
                                                 scalars: t.scalars)
        node.inputs[1] = renamed
        return node
    }

    mutating func constantNode(_ node: Node, tensors: [String: Onnx_TensorProto]) throws {
        guard node.outputs.count == 1 else { throw fail(node, "needs exactly one output") }
        let out = node.outputs[0]
        if let t = tensors["value"] {
            try store(try decoder.decode(t, name: out), as: out)
            return
        }
        switch (node.attributes.first?.key, node.attributes.first?.value) {
        case ("value_float", .float(let f)?): graph.initializers[out] = Tensor(shape: [], repeating: f)
        case ("value_floats", .floats(let f)?): graph.initializers[out] = try Tensor(shape: [f.count], scalars: f)
        case ("value_int", .int(let i)?): ints[out] = IntTensor(shape: [], ints: [i])
        case ("value_ints", .ints(let i)?): ints[out] = IntTensor(shape: [i.count], ints: i)
        case (let key?, _):
            throw fail(node, "value attribute '\(key)' is not supported (value, value_float(s) and value_int(s) are)")
        default:
            throw fail(node, "has no value")
        }
    }

    // MARK: Shapes

    /// The shape of a value, with the batch size symbolic when the inputs' first dimension is.
    /// Found by ``SymbolicShapes``, which lowers each node read so far once (at three batch
    /// sizes when the batch is symbolic).
    mutating func symbolicShape(_ v: String, for node: Node) throws -> [SymbolicDim] {
        if let t = graph.initializers[v] { return t.shape.map { SymbolicDim($0) } }
        if let t = ints[v] { return t.shape.map { SymbolicDim($0) } }
        if let s = shapeCache[v] { return s }
        if let bad = graph.inputs.first(where: { $0.shape.dropFirst().contains { $0 < 0 } }) {
            throw fail(node, "needs the shape of '\(v)', which depends on the dynamic dimensions of input '\(bad.name)' \(bad.shape); give concrete input shapes (metronome infer does)")
        }
        let result = try shapes.shape(of: v, in: graph) { MetronomeError.node(node: node.name, op: node.opType, message: $0) }
        shapeCache[v] = result
        return result
    }

    /// Most elements a tensor evaluated at import time (ConstantOfShape, Range, Gather,
    /// integer arithmetic and Concat) may have: 2^24, 64 MiB of float32. Shape computations
    /// need a handful; a hostile file must not make the importer allocate gigabytes.
    static let maxFoldedElements = 1 << 24

    /// The element count of `dims`, checked for negative sizes, overflow and the import-time cap.
    func foldedCount(_ dims: [Int], _ node: Node, what: String) throws -> Int {
        var count = 1
        for d in dims {
            guard d >= 0 else { throw fail(node, "\(what) \(dims.prefix(16)) has a negative dimension") }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= Self.maxFoldedElements else {
                throw fail(node, "\(what) \(dims.prefix(16)) has more than the \(Self.maxFoldedElements) elements evaluated at import time")
            }
            count = p
        }
        return count
    }

    func product(_ values: [SymbolicDim]) throws -> SymbolicDim? {
        var p = SymbolicDim(1)
        for v in values {
            guard let q = p * v else { return nil }
            p = q
        }
        return p
    }

    /// Integer Reshape target for run-time data: batch-dependent entries become 0 (copy the
    /// input's dimension) or -1 (inferred), which ONNX and the engine both understand.
    func reshapeTarget(_ target: [SymbolicDim], input: [SymbolicDim], node: Node) throws -> [Int] {
        var out: [Int] = []
        var open: [Int] = []
        for (i, t) in target.enumerated() {
            if let c = t.constant {
                out.append(c)
            } else if i < input.count && input[i] == t {
                out.append(0)
            } else {
                out.append(-1)
                open.append(i)
            }
        }
        if open.isEmpty { return out }
        guard open.count == 1, out.filter({ $0 == -1 }).count == 1 else {
            throw fail(node, "target shape \(target) depends on the batch size in a way a Reshape cannot express; export with a fixed batch or pass concrete input shapes")
        }
        return out
    }

    mutating func reshape(_ node: Node) throws {
        guard node.inputs.count == 2, let x = input(node, 0), let s = input(node, 1) else {
            throw fail(node, "expects 2 inputs (data, shape), got \(node.inputs.count)")
        }
        let allowZero = try intAttr(node, "allowzero") ?? 0
        var node = node
        node.attributes["allowzero"] = nil
        guard let target = try ints[s]?.values ?? graph.initializers[s].map({ try integers($0, node, what: "shape '\(s)'").map { SymbolicDim($0) } }) else {
            throw fail(node, "the shape (input '\(s)') must be a constant or computed from shapes; computed shapes are not supported")
        }
        if allowZero != 0 && target.contains(SymbolicDim(0)) {
            throw fail(node, "allowzero = 1 with a zero in the target shape is not supported")
        }
        let inputShape = try symbolicShape(x, for: node)
        if let t = ints[x] {
            guard let c = target.map(\.constant) as? [Int] else { throw fail(node, "batch-dependent reshape of an integer tensor") }
            let shape = try resolveStatic(c, from: t.shape, node: node)
            ints[node.outputs[0]] = IntTensor(shape: shape, values: t.values)
            return
        }
        let resolved = try reshapeTarget(target, input: inputShape, node: node)
        if let t = graph.initializers[x] {
            let shape = try resolveStatic(resolved, from: t.shape, node: node)
            graph.initializers[node.outputs[0]] = try Tensor(shape: shape, scalars: t.scalars)
            return
        }
        let name = ints[s]?.constants == resolved ? s : freshName(s)
        graph.integerConstants[name] = resolved
        node.inputs[1] = name
        emit(node)
    }

    /// ONNX Reshape semantics (0 copies, -1 infers) on a known shape.
    func resolveStatic(_ target: [Int], from shape: [Int], node: Node) throws -> [Int] {
        var out = target.enumerated().map { $0.element == 0 && $0.offset < shape.count ? shape[$0.offset] : $0.element }
        let total = shape.reduce(1, *)
        let unknown = out.indices.filter { out[$0] == -1 }
        guard unknown.count <= 1, out.allSatisfy({ $0 >= -1 }) else { throw fail(node, "invalid target shape \(target)") }
        if let u = unknown.first {
            let known = out.filter { $0 != -1 }.reduce(1, *)
            guard known > 0, total % known == 0 else { throw fail(node, "cannot reshape \(shape) to \(target)") }
            out[u] = total / known
        }
        guard out.reduce(1, *) == total else { throw fail(node, "cannot reshape \(shape) to \(target)") }
        return out
    }

    mutating func squeeze(_ node: Node) throws {
        guard let x = input(node, 0), node.outputs.count == 1 else { throw fail(node, "expects one data input and one output") }
        var axes = try intsAttr(node, "axes")
        if let a = try constantInts(node, 1, what: "axes") { axes = a }
        let inShape = try symbolicShape(x, for: node)
        var outShape: [SymbolicDim]
        if node.opType == "Unsqueeze" {
            guard let axes else { throw fail(node, "missing axes") }
            let rank = inShape.count + axes.count
            let norm = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            guard norm.count == axes.count, norm.allSatisfy({ $0 >= 0 && $0 < rank }) else { throw fail(node, "invalid axes \(axes) for output rank \(rank)") }
            var it = inShape.makeIterator()
            outShape = (0..<rank).map { norm.contains($0) ? SymbolicDim(1) : it.next()! }
        } else {
            let rank = inShape.count
            let norm: Set<Int>
            if let axes {
                norm = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
                guard norm.allSatisfy({ $0 >= 0 && $0 < rank && inShape[$0] == SymbolicDim(1) }) else {
                    throw fail(node, "axes \(axes) do not all name dimensions of size 1 in \(inShape)")
                }
            } else {
                guard inShape.allSatisfy({ $0.constant != nil }) else {
                    throw fail(node, "Squeeze without axes on a batch-dependent shape \(inShape) is ambiguous; give axes")
                }
                norm = Set(inShape.indices.filter { inShape[$0] == SymbolicDim(1) })
            }
            outShape = inShape.indices.filter { !norm.contains($0) }.map { inShape[$0] }
        }
        let out = node.outputs[0]
        if let t = ints[x] {
            ints[out] = IntTensor(shape: outShape.map(\.b), values: t.values)
        } else if let t = graph.initializers[x] {
            graph.initializers[out] = try Tensor(shape: outShape.map(\.b), scalars: t.scalars)
        } else {
            let target = try reshapeTarget(outShape, input: inShape, node: node)
            let shapeName = freshName(node.name + "_shape")
            graph.integerConstants[shapeName] = target
            emit(Node(name: node.name, opType: "Reshape", inputs: [x, shapeName], outputs: [out]))
        }
    }

    mutating func cast(_ node: Node) throws {
        guard let x = input(node, 0), node.outputs.count == 1 else { throw fail(node, "expects one input and one output") }
        guard let to = try intAttr(node, "to"), let type = Onnx_TensorProto.DataType(rawValue: to) else {
            throw fail(node, "missing or unknown 'to' type")
        }
        let toFloat = [.float, .double, .float16, .bfloat16].contains(type)
        let toInt = [.int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool].contains(type)
        guard toFloat || toInt else { throw fail(node, "casting to \(type.name) is not supported") }
        let out = node.outputs[0]
        if let t = ints[x] {
            if toInt {
                ints[out] = type == .bool ? IntTensor(shape: t.shape, values: t.values.map { SymbolicDim($0 == SymbolicDim(0) ? 0 : 1) }) : t
            } else {
                guard let c = t.constants else { throw fail(node, "a batch-dependent integer cannot become float data") }
                graph.initializers[out] = try Tensor(shape: t.shape, scalars: c.map { Float($0) })
            }
        } else if let t = graph.initializers[x] {
            if toFloat { graph.initializers[out] = t }
            else if type == .bool { ints[out] = IntTensor(shape: t.shape, ints: t.scalars.map { $0 != 0 ? 1 : 0 }) }
            else { ints[out] = IntTensor(shape: t.shape, ints: try integers(t, node, what: "input '\(x)'")) }
        } else {
            guard type == .float else {
                throw fail(node, "casting computed data to \(type.name) is not supported; Metronome computes float32 only")
            }
            emit(Node(name: node.name, opType: "Identity", inputs: [x], outputs: [out]))
        }
    }

    mutating func gather(_ node: Node) throws {
        guard node.inputs.count == 2, let x = input(node, 0), let idx = input(node, 1) else {
            throw fail(node, "expects 2 inputs (data, indices)")
        }
        guard let indicesTensor = ints[idx], let indices = indicesTensor.constants else {
            throw fail(node, "Gather is evaluated at import time only, with constant indices; here the indices '\(idx)' are computed")
        }
        let axis = try intAttr(node, "axis") ?? 0
        if let t = ints[x] {
            let (shape, values) = try gatherArray(t.values, shape: t.shape, indices: indices, indicesShape: indicesTensor.shape, axis: axis, node: node)
            ints[node.outputs[0]] = IntTensor(shape: shape, values: values)
        } else if let t = graph.initializers[x] {
            let (shape, values) = try gatherArray(t.scalars, shape: t.shape, indices: indices, indicesShape: indicesTensor.shape, axis: axis, node: node)
            graph.initializers[node.outputs[0]] = try Tensor(shape: shape, scalars: values)
        } else {
            throw fail(node, "Gather is evaluated at import time on constants and shapes only; Gather of computed data is not a run-time operator")
        }
    }

    func gatherArray<T>(_ data: [T], shape: [Int], indices: [Int], indicesShape: [Int], axis: Int, node: Node) throws -> ([Int], [T]) {
        guard !shape.isEmpty else { throw fail(node, "cannot gather from a scalar") }
        let a = axis < 0 ? axis + shape.count : axis
        guard a >= 0 && a < shape.count else { throw fail(node, "axis \(axis) is out of range for shape \(shape)") }
        let outer = shape[..<a].reduce(1, *), dim = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        _ = try foldedCount(Array(shape[..<a]) + indicesShape + Array(shape[(a + 1)...]), node, what: "output shape")
        guard indices.count == indicesShape.reduce(1, *), data.count == outer * dim * inner else {
            throw fail(node, "inconsistent data or indices shape")
        }
        var out: [T] = []
        out.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for i in indices {
                let j = i < 0 ? i + dim : i
                guard j >= 0 && j < dim else { throw fail(node, "index \(i) is out of range for dimension \(dim)") }
                out.append(contentsOf: data[((o * dim + j) * inner)..<((o * dim + j + 1) * inner)])
            }
        }
        return (Array(shape[..<a]) + indicesShape + Array(shape[(a + 1)...]), out)
    }

    mutating func integerArithmetic(_ node: Node) throws {
        guard node.inputs.count == 2, let x = input(node, 0), let y = input(node, 1) else { throw fail(node, "expects 2 inputs") }
        func operand(_ v: String) throws -> IntTensor {
            if let t = ints[v] { return t }
            if let t = graph.initializers[v], t.scalars.allSatisfy({ $0 == $0.rounded() }) {
                return IntTensor(shape: t.shape, ints: try integers(t, node, what: "input '\(v)'"))
            }
            throw fail(node, "mixes an integer shape value with computed float data '\(v)'; integer arithmetic is evaluated at import time only")
        }
        let a = try operand(x), b = try operand(y)
        let rank = max(a.shape.count, b.shape.count)
        let pa = Array(repeating: 1, count: rank - a.shape.count) + a.shape
        let pb = Array(repeating: 1, count: rank - b.shape.count) + b.shape
        var shape: [Int] = []
        for (p, q) in zip(pa, pb) {
            guard p == q || p == 1 || q == 1 else { throw fail(node, "shapes \(a.shape) and \(b.shape) cannot be broadcast") }
            // A size-1 dimension takes the other's size, including 0 (`max` would make a
            // 0-by-1 broadcast 1 long and index past the empty operand; found by fuzz-onnx).
            shape.append(p == 1 ? q : p)
        }
        let count = try foldedCount(shape, node, what: "broadcast shape")
        guard a.values.count == pa.reduce(1, *), b.values.count == pb.reduce(1, *) else {
            throw fail(node, "operand values do not match their shapes")
        }
        func index(_ flat: Int, _ s: [Int]) -> Int {
            var rem = flat, idx = 0, strideAcc = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                let i = rem % shape[d]
                rem /= shape[d]
                if s[d] != 1 { idx += i * strideAcc }
                strideAcc *= s[d]
            }
            return idx
        }
        var values: [SymbolicDim] = []
        for k in 0..<count {
            let u = a.values[index(k, pa)], v = b.values[index(k, pb)]
            let r: SymbolicDim?
            switch node.opType {
            case "Add": r = u + v
            case "Sub": r = u - v
            case "Mul": r = u * v
            default: r = u / v
            }
            guard let r else {
                throw fail(node, "\(u) \(node.opType) \(v) overflows 64-bit integers or is not expressible as a linear function of the batch size")
            }
            values.append(r)
        }
        ints[node.outputs[0]] = IntTensor(shape: shape, values: values)
    }

    mutating func integerConcat(_ node: Node) throws {
        var parts: [IntTensor] = []
        for v in node.inputs where !v.isEmpty {
            if let t = ints[v] { parts.append(t) }
            else if let t = graph.initializers[v], t.count == 0 { parts.append(IntTensor(shape: t.shape, ints: [])) }
            else { throw fail(node, "concatenates integer shape values with float data '\(v)'") }
        }
        guard let axis = try intAttr(node, "axis") else { throw fail(node, "missing attribute 'axis'") }
        guard let first = parts.first, !first.shape.isEmpty else { throw fail(node, "cannot concatenate scalars") }
        let rank = first.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank, parts.allSatisfy({ $0.shape.count == rank }) else { throw fail(node, "invalid axis \(axis)") }
        for p in parts {
            guard p.shape.indices.allSatisfy({ $0 == a || p.shape[$0] == first.shape[$0] }), p.values.count == p.shape.reduce(1, *) else {
                throw fail(node, "shapes \(parts.map(\.shape)) differ outside axis \(axis)")
            }
        }
        let outer = first.shape[..<a].reduce(1, *)
        var shape = first.shape
        shape[a] = parts.reduce(0) { $0 + $1.shape[a] }
        _ = try foldedCount(shape, node, what: "output shape")
        var values: [SymbolicDim] = []
        for o in 0..<outer {
            for p in parts {
                let chunk = p.shape[a...].reduce(1, *)
                values.append(contentsOf: p.values[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        ints[node.outputs[0]] = IntTensor(shape: shape, values: values)
    }

    mutating func integerSlice(_ node: Node) throws {
        guard let x = input(node, 0), let t = ints[x] else { throw fail(node, "missing data") }
        guard t.shape.count == 1 else { throw fail(node, "slicing integer tensors of rank \(t.shape.count) is not supported") }
        var starts = try intsAttr(node, "starts"), ends = try intsAttr(node, "ends")
        var axes = try intsAttr(node, "axes")
        var steps: [Int]? = nil
        if let s = try constantInts(node, 1, what: "starts") { starts = s }
        if let e = try constantInts(node, 2, what: "ends") { ends = e }
        if let a = try constantInts(node, 3, what: "axes") { axes = a }
        if let s = try constantInts(node, 4, what: "steps") { steps = s }
        guard let starts, let ends, starts.count == 1, ends.count == 1, (axes ?? [0]).allSatisfy({ $0 == 0 || $0 == -1 }) else {
            throw fail(node, "only slices along the single axis of a 1-D integer tensor are supported")
        }
        let step = steps?.first ?? 1
        guard step != 0 else { throw fail(node, "step 0") }
        let n = t.values.count
        var values: [SymbolicDim] = []
        if step > 0 {
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + n : v, 0), n) }
            var i = clamp(starts[0])
            let e = clamp(ends[0])
            while i < e {
                values.append(t.values[i])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        } else {
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + n : v, -1), n - 1) }
            var i = clamp(starts[0])
            let e = clamp(ends[0])
            while i > e {
                values.append(t.values[i])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        }
        ints[node.outputs[0]] = IntTensor(shape: [values.count], values: values)
    }

    /// Softmax before opset 13 flattens the input to 2-D at `axis` (default 1).
    mutating func legacySoftmax(_ node: Node) throws {
        guard let x = input(node, 0), node.outputs.count == 1 else { throw fail(node, "expects one input and one output") }
        let shape = try symbolicShape(x, for: node)
        let rank = shape.count
        let axis = try intAttr(node, "axis") ?? 1
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw fail(node, "axis \(axis) is out of range for rank \(rank)") }
        if a == rank - 1 {
            var n = node
            n.attributes["axis"] = .int(-1)
            try generic(n)
            return
        }
        guard let rows = try product(Array(shape[..<a])), let cols = try product(Array(shape[a...])) else {
            throw fail(node, "the flattened shape is not linear in the batch size")
        }
        let flat = freshName(node.name + "_flat"), soft = freshName(node.name + "_softmax")
        let target = try reshapeTarget(shape, input: [rows, cols], node: node)
        let shapeName = freshName(node.name + "_shape")
        graph.integerConstants[shapeName] = target
        try generic(Node(name: flat, opType: "Flatten", inputs: [x], outputs: [flat], attributes: ["axis": .int(a)]))
        try generic(Node(name: soft, opType: "Softmax", inputs: [flat], outputs: [soft], attributes: ["axis": .int(1)]))
        try generic(Node(name: node.name, opType: "Reshape", inputs: [soft, shapeName], outputs: node.outputs))
    }

    /// Pad (opset 18) with an axes input: expanded to pads for every axis.
    mutating func padWithAxes(_ node: Node) throws {
        guard let x = input(node, 0) else { throw fail(node, "missing data") }
        guard let axes = try constantInts(node, 3, what: "axes"), let pads = try constantInts(node, 1, what: "pads") else {
            throw fail(node, "pads and axes must be constants")
        }
        let rank = try symbolicShape(x, for: node).count
        guard pads.count == 2 * axes.count else { throw fail(node, "pads \(pads) need \(2 * axes.count) values for axes \(axes)") }
        var full = Array(repeating: 0, count: 2 * rank)
        for (k, axis) in axes.enumerated() {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else { throw fail(node, "axis \(axis) is out of range for rank \(rank)") }
            full[a] = pads[k]
            full[a + rank] = pads[k + axes.count]
        }
        let name = freshName(node.name + "_pads")
        graph.integerConstants[name] = full
        var n = node
        n.inputs = [x, name] + (input(node, 2).map { [$0] } ?? [])
        try generic(n)
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
