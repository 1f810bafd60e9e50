/// The lowering of one graph at one set of input shapes. It can also run incrementally
/// (``lowerInputs(inputShapes:batch:)``, then ``lowerPendingNodes()`` whenever `graph` has
/// grown), so that the importer's symbolic shapes lower each node once.
struct Lowering {
    var graph: Graph
    var program: Program
    var ids: [String: ValueID] = [:]
    /// How many of `graph.nodes` are lowered.
    var loweredNodes = 0

    init(graph: Graph) {
        self.graph = graph
        program = Program(name: graph.name, values: [], constants: [:], inputs: [], outputs: [], steps: [])
    }

    mutating func run(inputShapes: [String: [Int]], batch: Int?) throws -> Program {
        try lowerInputs(inputShapes: inputShapes, batch: batch)
        try lowerPendingNodes()
        for name in graph.outputs {
            guard let id = ids[name] else {
                throw MetronomeError.invalidGraph("graph output '\(name)' is not produced by any node")
            }
            program.outputs.append(id)
        }
        if program.outputs.isEmpty { throw MetronomeError.invalidGraph("graph '\(graph.name)' has no outputs") }
        return program
    }

    /// Adds the graph inputs with their concrete shapes.
    mutating func lowerInputs(inputShapes: [String: [Int]], batch: Int?) throws {
        if let batch, batch < 1 { throw MetronomeError.invalidArgument("batch must be at least 1, got \(batch)") }
        for input in graph.inputs {
            var shape = input.shape
            if let given = inputShapes[input.name] {
                guard given.allSatisfy({ $0 >= 0 }) else {
                    throw MetronomeError.invalidArgument("input '\(input.name)' has shape \(given) with a negative dimension")
                }
                guard given.count == shape.count, zip(given, shape).allSatisfy({ $1 < 0 || $0 == $1 }) else {
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
    }

    /// Lowers the nodes of `graph` not lowered yet, in order.
    mutating func lowerPendingNodes() throws {
        while loweredNodes < graph.nodes.count {
            try lower(graph.nodes[loweredNodes])
            loweredNodes += 1
        }
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
        guard let op = OperatorRegistry.named(node.opType) else {
            throw MetronomeError.unsupportedOperator(node: node.name, op: node.opType,
                                                     supported: Program.supportedOperators)
        }
        var parser = NodeParser(node: node, graph: graph)
        let (parsed, dataInputs) = try op.parse(&parser)
        try parser.checkAllAttributesUsed()
        var inputIDs: [ValueID] = []
        for name in dataInputs { inputIDs.append(try value(name, of: node)) }
        let shapes = inputIDs.map { program.shape($0) }
        let (resolved, outShapes) = try op.inferShapes(parsed, inputs: shapes, ShapeContext(node: node))
        if !op.acceptsEmptyTensors(resolved), let empty = (shapes + outShapes).first(where: { $0.contains(0) }) {
            throw MetronomeError.node(node: node.name, op: node.opType,
                                      message: "an empty tensor (shape \(empty)) is not supported here; only reductions, Slice, Split, Concat and Identity take empty tensors")
        }
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

