/// Turns a ``Graph`` into a ``Program``: resolves every node's operator through the
/// ``OperatorRegistry``, checks its attributes and inputs, and infers all shapes.
extension Program {
    /// The ONNX operator types the engine runs in ``OperatorRegistry`` order (internal step types such as the int8 pass's are not listed).
    public static var supportedOperators: [String] { OperatorRegistry.names.filter { !$0.hasPrefix("Metronome.") } }

    /// The input positions of ONNX operator `opType` that are parameters (a shape, bounds,
    /// sizes, pads) read as constants when lowering, rather than data.
    public static func parameterInputs(of opType: String) -> Set<Int> {
        OperatorRegistry.named(opType)?.parameterInputs(of: opType) ?? []
    }

    /// Lowers `graph`. Symbolic (`-1`) input dimensions take `batch` when given, otherwise
    /// `inputShapes` must name the concrete shape of each input with symbolic dimensions.
    public init(lowering graph: Graph, inputShapes: [String: [Int]] = [:], batch: Int? = nil) throws {
        var lowering = Lowering(graph: graph)
        self = try lowering.run(inputShapes: inputShapes, batch: batch)
    }
}
