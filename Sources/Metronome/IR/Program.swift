public typealias ValueID = Int

/// One typed operation of a ``Program``.
public struct Step: Equatable, Sendable {
    /// The name of the graph node this step came from (for errors and per-layer reports).
    public var name: String
    /// The ONNX operator type of that node.
    public var opType: String
    public var op: Op
    public var inputs: [ValueID]
    public var outputs: [ValueID]
    public var postOps: [PostOp]
    /// Names of the graph nodes the optimizer merged into this step (a folded batch norm, a
    /// fused residual add or activation), in the order they were absorbed; per-kernel
    /// profiles name every node a kernel computes.
    public var fusedNodes: [String] = []

    public init(name: String, opType: String, op: Op, inputs: [ValueID], outputs: [ValueID],
                postOps: [PostOp] = []) {
        self.name = name
        self.opType = opType
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.postOps = postOps
    }
}

/// A ``Graph`` lowered for concrete input shapes: typed operators, every value's shape
/// inferred and checked, weights attached to constant values. Optimisation passes rewrite
/// programs; the reference interpreter and the compiler consume them.
public struct Program: Equatable, Sendable {
    public struct Value: Equatable, Sendable {
        public var name: String
        public var shape: [Int]
        public var count: Int { shape.reduce(1, *) }
    }

    public var name: String
    public var values: [Value]
    public var constants: [ValueID: Tensor]
    public var inputs: [ValueID]
    public var outputs: [ValueID]
    public var steps: [Step]

    public func shape(_ id: ValueID) -> [Int] { values[id].shape }
    public func isConstant(_ id: ValueID) -> Bool { constants[id] != nil }

    /// Adds a value and returns its id.
    public mutating func addValue(name: String, shape: [Int]) -> ValueID {
        values.append(Value(name: name, shape: shape))
        return values.count - 1
    }

    /// Adds a constant value holding `tensor`.
    public mutating func addConstant(name: String, _ tensor: Tensor) -> ValueID {
        let id = addValue(name: name, shape: tensor.shape)
        constants[id] = tensor
        return id
    }

    /// For each value, the indices of the steps that read it (inputs and residual post-ops).
    public func consumers() -> [ValueID: [Int]] {
        var result: [ValueID: [Int]] = [:]
        for (i, step) in steps.enumerated() {
            for v in step.inputs { result[v, default: []].append(i) }
            for case .add(let v) in step.postOps { result[v, default: []].append(i) }
        }
        return result
    }

    /// Bytes of all constants that steps still use.
    public var weightBytes: Int {
        var used = Set<ValueID>()
        for step in steps { for v in step.inputs where constants[v] != nil { used.insert(v) } }
        return used.reduce(0) { $0 + (constants[$1]?.byteCount ?? 0) }
    }
}
