/// Turns a ``Graph`` into a ``Program``: resolves every node's operator through the
/// registry below, checks its attributes and inputs, and infers all shapes.
extension Program {
    /// The ONNX operator types the engine runs.
    public static let supportedOperators: [String] = [
        "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Silu", "Swish",
        "HardSigmoid", "HardSwish", "Tanh", "MaxPool", "AveragePool", "GlobalAveragePool",
        "Add", "Sub", "Mul", "Div", "Concat", "Split", "Slice", "Gemm", "MatMul", "Flatten",
        "Reshape", "Transpose", "Softmax", "Pad", "Identity", "Dropout",
    ]

    /// Lowers `graph`. Symbolic (`-1`) input dimensions take `batch` when given, otherwise
    /// `inputShapes` must name the concrete shape of each input with symbolic dimensions.
    public init(lowering graph: Graph, inputShapes: [String: [Int]] = [:], batch: Int? = nil) throws {
        var lowering = Lowering(graph: graph)
        self = try lowering.run(inputShapes: inputShapes, batch: batch)
    }
}

private struct Lowering {
    let graph: Graph
    var program: Program
    var ids: [String: ValueID] = [:]

    init(graph: Graph) {
        self.graph = graph
        program = Program(name: graph.name, values: [], constants: [:], inputs: [], outputs: [], steps: [])
    }

    mutating func run(inputShapes: [String: [Int]], batch: Int?) throws -> Program {
        if let batch, batch < 1 { throw MetronomeError.invalidArgument("batch must be at least 1, got \(batch)") }
        for input in graph.inputs {
            var shape = input.shape
            if let given = inputShapes[input.name] {
                guard given.count == shape.count,
                      zip(given, shape).allSatisfy({ $1 < 0 || $0 == $1 }), given.allSatisfy({ $0 > 0 }) else {
                    throw MetronomeError.inputShape(name: input.name, expected: input.shape, actual: given)
                }
                shape = given
            } else if shape.contains(where: { $0 < 0 }) {
                guard let batch else {
                    throw MetronomeError.invalidArgument(
                        "input '\(input.name)' has symbolic dimensions \(input.shape); give a batch size or a shape")
                }
                shape = shape.enumerated().map { $0.element < 0 ? ($0.offset == 0 ? batch : -1) : $0.element }
                if shape.contains(where: { $0 < 0 }) {
                    throw MetronomeError.invalidArgument(
                        "input '\(input.name)' has symbolic non-batch dimensions \(input.shape); give its shape")
                }
            } else if let batch, !shape.isEmpty {
                shape[0] = batch
            }
            let id = program.addValue(name: input.name, shape: shape)
            ids[input.name] = id
            program.inputs.append(id)
        }
        for node in graph.nodes { try lower(node) }
        for name in graph.outputs {
            guard let id = ids[name] else {
                throw MetronomeError.invalidGraph("graph output '\(name)' is not produced by any node")
            }
            program.outputs.append(id)
        }
        if program.outputs.isEmpty { throw MetronomeError.invalidGraph("graph '\(graph.name)' has no outputs") }
        return program
    }

    /// The value id of a float input, creating constant values for initializers on first use.
    mutating func value(_ name: String, of node: Node) throws -> ValueID {
        if let id = ids[name] { return id }
        if let t = graph.initializers[name] {
            let id = program.addConstant(name: name, t)
            ids[name] = id
            return id
        }
        throw MetronomeError.node(node: node.name, op: node.opType,
                                  message: "input '\(name)' is neither a graph input, an initializer nor the output of an earlier node")
    }

    mutating func lower(_ node: Node) throws {
        guard Program.supportedOperators.contains(node.opType) else {
            throw MetronomeError.unsupportedOperator(node: node.name, op: node.opType,
                                                     supported: Program.supportedOperators)
        }
        var parser = NodeParser(node: node, graph: graph)
        let (op, dataInputs) = try parser.parse()
        try parser.checkAllAttributesUsed()
        var inputIDs: [ValueID] = []
        for name in dataInputs { inputIDs.append(try value(name, of: node)) }
        let shapes = inputIDs.map { program.shape($0) }
        let (resolved, outShapes) = try ShapeInference.infer(op, inputs: shapes, node: node)
        guard outShapes.count == node.outputs.count else {
            throw MetronomeError.node(node: node.name, op: node.opType,
                                      message: "produces \(outShapes.count) outputs but the node names \(node.outputs.count)")
        }
        var outIDs: [ValueID] = []
        for (name, shape) in zip(node.outputs, outShapes) {
            guard ids[name] == nil else {
                throw MetronomeError.node(node: node.name, op: node.opType, message: "output '\(name)' is already defined")
            }
            let id = program.addValue(name: name, shape: shape)
            ids[name] = id
            outIDs.append(id)
        }
        program.steps.append(Step(name: node.name, opType: node.opType, op: resolved,
                                  inputs: inputIDs, outputs: outIDs))
    }
}

/// Reads one node's attributes and constant inputs into a typed ``Op``; remembers which
/// attributes it read so that any other attribute is reported instead of ignored.
struct NodeParser {
    let node: Node
    let graph: Graph
    var used: Set<String> = []

    init(node: Node, graph: Graph) {
        self.node = node
        self.graph = graph
    }

    func fail(_ message: String) -> MetronomeError {
        .node(node: node.name, op: node.opType, message: message)
    }

    mutating func int(_ key: String, default value: Int) throws -> Int {
        guard let a = node.attributes[key] else { return value }
        used.insert(key)
        guard case .int(let v) = a else { throw fail("attribute '\(key)' must be an integer") }
        return v
    }

    mutating func float(_ key: String, default value: Float) throws -> Float {
        guard let a = node.attributes[key] else { return value }
        used.insert(key)
        switch a {
        case .float(let v): return v
        case .int(let v): return Float(v)
        default: throw fail("attribute '\(key)' must be a float")
        }
    }

    mutating func ints(_ key: String) throws -> [Int]? {
        guard let a = node.attributes[key] else { return nil }
        used.insert(key)
        switch a {
        case .ints(let v): return v
        case .int(let v): return [v]
        default: throw fail("attribute '\(key)' must be a list of integers")
        }
    }

    mutating func string(_ key: String, default value: String) throws -> String {
        guard let a = node.attributes[key] else { return value }
        used.insert(key)
        guard case .string(let v) = a else { throw fail("attribute '\(key)' must be a string") }
        return v
    }

    /// Ignores an attribute that has no effect at inference time.
    mutating func ignore(_ key: String) { used.insert(key) }

    func checkAllAttributesUsed() throws {
        let unknown = Set(node.attributes.keys).subtracting(used)
        if let key = unknown.sorted().first {
            let known = NodeParser.attributes[node.opType] ?? []
            throw fail("unsupported attribute '\(key)'; \(node.opType) accepts "
                       + (known.isEmpty ? "no attributes" : known.joined(separator: ", ")))
        }
    }

    /// The attributes each operator's parser reads, for error messages.
    static let attributes: [String: [String]] = [
        "Conv": ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
        "BatchNormalization": ["epsilon", "momentum", "spatial", "training_mode"],
        "Silu": ["alpha"], "Swish": ["alpha"], "LeakyRelu": ["alpha"], "HardSigmoid": ["alpha", "beta"],
        "Clip": ["max", "min"],
        "MaxPool": ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"],
        "AveragePool": ["auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"],
        "Concat": ["axis"], "Split": ["axis", "num_outputs", "split"], "Slice": ["axes", "ends", "starts"],
        "Gemm": ["alpha", "beta", "transA", "transB"], "Flatten": ["axis"], "Reshape": ["allowzero"],
        "Transpose": ["perm"], "Softmax": ["axis"], "Pad": ["mode", "pads", "value"], "Dropout": ["ratio", "seed"],
    ]

    func input(_ i: Int) -> String? {
        i < node.inputs.count && !node.inputs[i].isEmpty ? node.inputs[i] : nil
    }

    func requireInputs(_ range: ClosedRange<Int>) throws {
        let n = node.inputs.count
        guard range.contains(n) else {
            let expected = range.lowerBound == range.upperBound
                ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
            throw fail("expects \(expected) inputs, got \(n)")
        }
        guard input(0) != nil else { throw fail("the data input is missing") }
    }

    /// An integer constant input (Reshape shape, Slice bounds, ...).
    func integerInput(_ i: Int, what: String) throws -> [Int]? {
        guard let name = input(i) else { return nil }
        if let v = graph.integerConstants[name] { return v }
        if let t = graph.initializers[name] {
            // Exporters sometimes store integer parameters as float tensors.
            return t.scalars.map { Int($0) }
        }
        throw fail("\(what) (input '\(name)') must be a constant; computed \(what) is not supported")
    }

    /// A scalar float constant input (Clip bounds, Pad value).
    func scalarInput(_ i: Int, what: String) throws -> Float? {
        guard let name = input(i) else { return nil }
        guard let t = graph.initializers[name] else {
            throw fail("\(what) (input '\(name)') must be a constant initializer")
        }
        guard t.count == 1 else { throw fail("\(what) must be a scalar, got shape \(t.shape)") }
        return t.scalars[0]
    }

    mutating func spatial(_ key: String, default value: [Int]) throws -> [Int] {
        guard let v = try ints(key) else { return value }
        guard v.count == value.count else {
            throw fail("attribute '\(key)' has \(v.count) values; only 2-D (NCHW) operators are supported, which need \(value.count)")
        }
        return v
    }

    /// ONNX pads `[top, left, bottom, right]` (begins then ends), after `auto_pad`.
    mutating func pads(kernelExtent: [Int]) throws -> [Int]? {
        let autoPad = try string("auto_pad", default: "NOTSET")
        switch autoPad {
        case "NOTSET", "VALID":
            let p = try spatial("pads", default: [0, 0, 0, 0])
            if autoPad == "VALID" && p.contains(where: { $0 != 0 }) { throw fail("auto_pad VALID with explicit pads") }
            guard p.allSatisfy({ $0 >= 0 }) else { throw fail("negative pads \(p) are not supported") }
            return p
        case "SAME_UPPER", "SAME_LOWER":
            return nil  // resolved by shape inference, which knows the input size
        default:
            throw fail("unsupported auto_pad '\(autoPad)'; use NOTSET, VALID, SAME_UPPER or SAME_LOWER")
        }
    }

    mutating func parse() throws -> (Op, [String]) {
        let n = node
        switch n.opType {
        case "Conv":
            try requireInputs(2...3)
            var kernel = try spatial("kernel_shape", default: [0, 0])
            let strides = try spatial("strides", default: [1, 1])
            let dilations = try spatial("dilations", default: [1, 1])
            let group = try int("group", default: 1)
            guard group >= 1 else { throw fail("group must be at least 1, got \(group)") }
            guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }) else {
                throw fail("strides and dilations must be positive")
            }
            if let w = input(1), let t = graph.initializers[w], t.rank == 4 {
                if kernel == [0, 0] { kernel = Array(t.shape[2...]) }
            }
            let autoPad = n.attributes["auto_pad"]
            let pads = try self.pads(kernelExtent: kernel)
            var attrs = ConvAttributes(kernel: kernel, strides: strides, pads: pads ?? [0, 0, 0, 0],
                                       dilations: dilations, groups: group)
            if pads == nil, case .string(let mode) = autoPad {
                attrs.pads = [mode == "SAME_LOWER" ? -1 : -2]  // marker resolved in shape inference
            }
            return (.conv(attrs), [n.inputs[0], n.inputs[1]] + (input(2).map { [$0] } ?? []))
        case "BatchNormalization":
            try requireInputs(5...5)
            let eps = try float("epsilon", default: 1e-5)
            ignore("momentum")
            if try int("training_mode", default: 0) != 0 { throw fail("training_mode=1 is not supported for inference") }
            if try int("spatial", default: 1) != 1 { throw fail("spatial=0 is not supported") }
            guard n.outputs.count == 1 else { throw fail("training outputs (running mean/var) are not supported") }
            return (.batchNorm(epsilon: eps), Array(n.inputs.prefix(5)))
        case "Relu": try requireInputs(1...1); return (.eltwise(.relu), [n.inputs[0]])
        case "Sigmoid": try requireInputs(1...1); return (.eltwise(.sigmoid), [n.inputs[0]])
        case "Tanh": try requireInputs(1...1); return (.eltwise(.tanh), [n.inputs[0]])
        case "Silu", "Swish":
            try requireInputs(1...1)
            if try float("alpha", default: 1) != 1 { throw fail("only alpha = 1 is supported") }
            return (.eltwise(.silu), [n.inputs[0]])
        case "HardSwish": try requireInputs(1...1); return (.eltwise(.hardSwish), [n.inputs[0]])
        case "LeakyRelu":
            try requireInputs(1...1)
            return (.eltwise(.leakyRelu(alpha: try float("alpha", default: 0.01))), [n.inputs[0]])
        case "HardSigmoid":
            try requireInputs(1...1)
            let a = try float("alpha", default: 0.2), b = try float("beta", default: 0.5)
            return (.eltwise(.hardSigmoid(alpha: a, beta: b)), [n.inputs[0]])
        case "Clip":
            try requireInputs(1...3)
            // Opset < 11 passes the bounds as attributes, later opsets as inputs.
            var lo = try float("min", default: -.greatestFiniteMagnitude)
            var hi = try float("max", default: .greatestFiniteMagnitude)
            if let v = try scalarInput(1, what: "min") { lo = v }
            if let v = try scalarInput(2, what: "max") { hi = v }
            guard lo <= hi else { throw fail("min \(lo) is greater than max \(hi)") }
            if lo == 0 && hi == .greatestFiniteMagnitude { return (.eltwise(.relu), [n.inputs[0]]) }
            return (.eltwise(.clip(min: lo, max: hi)), [n.inputs[0]])
        case "MaxPool", "AveragePool":
            try requireInputs(1...1)
            guard let kernel = try ints("kernel_shape") else { throw fail("missing attribute 'kernel_shape'") }
            guard kernel.count == 2 else { throw fail("only 2-D pooling is supported, kernel_shape is \(kernel)") }
            let strides = try spatial("strides", default: [1, 1])
            let dilations = try spatial("dilations", default: [1, 1])
            let ceil = try int("ceil_mode", default: 0) != 0
            if n.opType == "MaxPool" {
                if try int("storage_order", default: 0) != 0 { throw fail("storage_order=1 is not supported") }
                guard n.outputs.count == 1 else { throw fail("the Indices output is not supported") }
            }
            let pads = try self.pads(kernelExtent: kernel)
            var attrs = PoolAttributes(kernel: kernel, strides: strides, pads: pads ?? [0, 0, 0, 0],
                                       dilations: dilations, ceilMode: ceil)
            if pads == nil, case .string(let mode)? = n.attributes["auto_pad"] {
                attrs.pads = [mode == "SAME_LOWER" ? -1 : -2]
            }
            if n.opType == "MaxPool" { return (.maxPool(attrs), [n.inputs[0]]) }
            guard dilations == [1, 1] else { throw fail("dilated average pooling is not supported") }
            let include = try int("count_include_pad", default: 0) != 0
            return (.averagePool(attrs, countIncludePad: include), [n.inputs[0]])
        case "GlobalAveragePool":
            try requireInputs(1...1)
            return (.globalAveragePool, [n.inputs[0]])
        case "Add", "Sub", "Mul", "Div":
            try requireInputs(2...2)
            guard let kind = BinaryKind(rawValue: n.opType) else { throw fail("unknown binary operator") }
            return (.binary(kind), [n.inputs[0], n.inputs[1]])
        case "Concat":
            guard !n.inputs.isEmpty else { throw fail("needs at least one input") }
            guard let axis = try ints("axis")?.first else { throw fail("missing attribute 'axis'") }
            return (.concat(axis: axis), n.inputs)
        case "Split":
            try requireInputs(1...2)
            let axis = try int("axis", default: 0)
            var sizes = try ints("split") ?? []
            if let s = try integerInput(1, what: "split sizes") { sizes = s }
            ignore("num_outputs")
            // Sizes left empty mean equal parts; shape inference fills them in.
            return (.split(axis: axis, sizes: sizes.isEmpty ? Array(repeating: -1, count: n.outputs.count) : sizes),
                    [n.inputs[0]])
        case "Slice":
            try requireInputs(1...5)
            // Opset < 10 passes bounds as attributes.
            var starts = try ints("starts"), ends = try ints("ends"), axes = try ints("axes")
            var steps: [Int]? = nil
            if let s = try integerInput(1, what: "starts") { starts = s }
            if let e = try integerInput(2, what: "ends") { ends = e }
            if let a = try integerInput(3, what: "axes") { axes = a }
            if let s = try integerInput(4, what: "steps") { steps = s }
            guard let starts, let ends, starts.count == ends.count else { throw fail("starts and ends must be given with equal lengths") }
            let ax = axes ?? Array(0..<starts.count)
            let st = steps ?? Array(repeating: 1, count: starts.count)
            guard ax.count == starts.count, st.count == starts.count else { throw fail("axes and steps must match starts") }
            guard st.allSatisfy({ $0 > 0 }) else { throw fail("only positive steps are supported, got \(st)") }
            return (.slice(starts: starts, ends: ends, axes: ax, steps: st), [n.inputs[0]])
        case "Gemm":
            try requireInputs(2...3)
            let alpha = try float("alpha", default: 1), beta = try float("beta", default: 1)
            let ta = try int("transA", default: 0) != 0, tb = try int("transB", default: 0) != 0
            return (.gemm(alpha: alpha, beta: beta, transA: ta, transB: tb),
                    [n.inputs[0], n.inputs[1]] + (input(2).map { [$0] } ?? []))
        case "MatMul":
            try requireInputs(2...2)
            return (.matMul, [n.inputs[0], n.inputs[1]])
        case "Flatten":
            try requireInputs(1...1)
            return (.flatten(axis: try int("axis", default: 1)), [n.inputs[0]])
        case "Reshape":
            try requireInputs(2...2)
            if try int("allowzero", default: 0) != 0 { throw fail("allowzero=1 is not supported") }
            guard let shape = try integerInput(1, what: "shape") else { throw fail("missing shape input") }
            return (.reshape(shape: shape), [n.inputs[0]])
        case "Transpose":
            try requireInputs(1...1)
            return (.transpose(perm: try ints("perm") ?? []), [n.inputs[0]])
        case "Softmax":
            try requireInputs(1...1)
            return (.softmax(axis: try int("axis", default: -1)), [n.inputs[0]])
        case "Pad":
            try requireInputs(1...4)
            let mode = try string("mode", default: "constant")
            guard mode == "constant" else { throw fail("only constant padding is supported, got mode '\(mode)'") }
            var pads = try ints("pads") ?? []
            var value = try float("value", default: 0)
            if let p = try integerInput(1, what: "pads") { pads = p }
            if let v = try scalarInput(2, what: "constant value") { value = v }
            if input(3) != nil { throw fail("the axes input is not supported") }
            guard pads.allSatisfy({ $0 >= 0 }) else { throw fail("negative pads \(pads) are not supported") }
            return (.pad(pads: pads, value: value), [n.inputs[0]])
        case "Identity":
            try requireInputs(1...1)
            return (.identity, [n.inputs[0]])
        case "Dropout":
            try requireInputs(1...3)
            ignore("ratio"); ignore("seed")
            guard n.outputs.count == 1 else { throw fail("the mask output is not supported at inference") }
            return (.identity, [n.inputs[0]])
        default:
            throw MetronomeError.unsupportedOperator(node: n.name, op: n.opType, supported: Program.supportedOperators)
        }
    }
}
