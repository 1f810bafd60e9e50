/// The table from ONNX operator type to ``Operator``. It is built once, as an immutable
/// value; the order of ``operators`` is the order of ``Program/supportedOperators``.
enum OperatorRegistry {
    /// Every operator the engine runs. Adding an operator: write `Ops/<Name>.swift` and add
    /// one line here.
    static let operators: [any Operator] = [
        ConvOperator(),
        BatchNormOperator(),
        ActivationOperator(),
        PoolingOperator(),
        BinaryOperator(),
        ConcatOperator(),
        SplitOperator(),
        SliceOperator(),
        MatrixProductOperator(),
        ReshapeOperator(),
        TransposeOperator(),
        SoftmaxOperator(),
        PadOperator(),
        IdentityOperator(),
        UnaryOperator(),
        PowOperator(),
        PReluOperator(),
        VariadicOperator(),
        ReduceOperator(),
        LayerNormOperator(),
        ConvTransposeOperator(),
        ResizeOperator(),
        ExpandTileOperator(),
        SpaceDepthOperator(),
        QuantizeLinearOperator(),
        QuantizedLinearOperator(),
        LRNOperator(),
        GatherOperator(),
    ]

    static let byName: [String: any Operator] = {
        var table: [String: any Operator] = [:]
        for op in operators {
            for name in op.onnxNames {
                precondition(table[name] == nil, "ONNX operator \(name) is registered twice")
                table[name] = op
            }
        }
        return table
    }()

    /// The ONNX operator types, in registration order.
    static let names: [String] = operators.flatMap(\.onnxNames)

    /// The operator for an ONNX operator type, or nil when the engine does not run it.
    static func named(_ opType: String) -> (any Operator)? { byName[opType] }

    /// The operator that lowered `step`.
    static func of(_ step: Step) throws -> any Operator {
        guard let op = byName[step.opType] else {
            throw MetronomeError.unsupportedOperator(node: step.name, op: step.opType, supported: names)
        }
        return op
    }
}
