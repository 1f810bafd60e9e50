import Metronome

extension Zoo {
    /// Learnable parameters the way PyTorch counts them (`sum(p.numel() for p in
    /// model.parameters())`): convolution, fully connected and batch-norm weights and biases.
    /// Batch-norm running statistics and small operator constants (Clip bounds) are buffers
    /// or attributes there, so they are not counted; ``Graph/parameterCount`` counts every
    /// float initializer instead. The layer types are named here because this is PyTorch's
    /// notion of a parameter (a property of its modules), counted on the graph without
    /// lowering it; the engine's own count is the cost model's (``OperatorCost``).
    public static func learnableParameterCount(_ graph: Graph) -> Int {
        var names = Set<String>()
        for n in graph.nodes {
            switch n.opType {
            case "Conv", "Gemm", "MatMul": names.formUnion(n.inputs.dropFirst())
            case "BatchNormalization": names.formUnion(n.inputs.dropFirst().prefix(2))
            default: break
            }
        }
        return names.reduce(0) { $0 + (graph.initializers[$1]?.count ?? 0) }
    }
}
