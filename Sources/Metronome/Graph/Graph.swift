/// An attribute value of a ``Node``, following ONNX's attribute kinds.
public enum Attribute: Equatable, Sendable {
    case int(Int)
    case ints([Int])
    case float(Float)
    case floats([Float])
    case string(String)
}

/// One operation in a ``Graph``. Names refer to values; an empty input name marks an
/// omitted optional input, as in ONNX.
public struct Node: Equatable, Sendable {
    public var name: String
    public var opType: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: Attribute]

    public init(name: String, opType: String, inputs: [String], outputs: [String],
                attributes: [String: Attribute] = [:]) {
        self.name = name
        self.opType = opType
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}

/// A graph input: a name and a shape. A dimension of `-1` is symbolic (typically the batch)
/// and is fixed when the graph is lowered for concrete input shapes.
public struct ValueInfo: Equatable, Sendable {
    public var name: String
    public var shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// The model as it comes from a source (zoo builder, ONNX file, checkpoint): named values,
/// nodes in topological order, float weights and small integer constants.
///
/// `Graph` is deliberately close to ONNX so that import and export are lossless; the typed,
/// shape-checked form that passes and backends work on is ``Program``.
public struct Graph: Equatable, Sendable {
    public var name: String
    public var inputs: [ValueInfo]
    public var outputs: [String]
    public var nodes: [Node]
    /// Float weights (convolution kernels, biases, batch-norm statistics, ...).
    public var initializers: [String: Tensor]
    /// Integer constants that parameterize operators (Reshape shapes, Slice bounds,
    /// Split sizes, Pad amounts), keyed by value name; always one-dimensional.
    public var integerConstants: [String: [Int]]

    public init(name: String, inputs: [ValueInfo] = [], outputs: [String] = [],
                nodes: [Node] = [], initializers: [String: Tensor] = [:],
                integerConstants: [String: [Int]] = [:]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
        self.integerConstants = integerConstants
    }

    /// Total number of float parameters held in initializers.
    public var parameterCount: Int { initializers.values.reduce(0) { $0 + $1.count } }
}
