/// The shapes of a graph's values as functions of a symbolic batch size (``SymbolicDim``),
/// for a graph that is still being built (the ONNX importer asks while it reads nodes).
///
/// The graph is lowered at three batch sizes (three points fix a line and check that the
/// dimension is one); each node is lowered once per sample, when a shape is first asked
/// for after it was added, never the whole graph again.
public struct SymbolicShapes {
    /// Batch sizes the graph is lowered at when an input's batch is symbolic.
    static let sampleBatches = [2, 3, 5]
    /// One lowering per sample batch (one in all when no input is symbolic); empty until
    /// the first question.
    private var lowerings: [Lowering] = []

    public init() {}

    /// The shape of value `name` of `graph` (a graph input or node output). Inputs may be
    /// symbolic (`-1`) in their first dimension only. `fail` makes the error for a shape
    /// that is not `a·N + b` (it names the node that asked).
    public mutating func shape(of name: String, in graph: Graph,
                               fail: (String) -> MetronomeError) throws -> [SymbolicDim] {
        if lowerings.isEmpty {
            let dynamic = graph.inputs.filter { $0.shape.contains { $0 < 0 } }
            var made: [Lowering] = []
            for b in dynamic.isEmpty ? [nil] : Self.sampleBatches.map(Optional.some) {
                var shapes: [String: [Int]] = [:]
                if let b { for i in dynamic { shapes[i.name] = [b] + i.shape.dropFirst() } }
                var lowering = Lowering(graph: graph)
                try lowering.lowerInputs(inputShapes: shapes, batch: nil)
                made.append(lowering)
            }
            lowerings = made
        }
        var samples: [[Int]] = []
        for i in lowerings.indices {
            lowerings[i].graph = graph
            try lowerings[i].lowerPendingNodes()
            guard let id = lowerings[i].ids[name] else {
                throw MetronomeError.invalidGraph("graph output '\(name)' is not produced by any node")
            }
            samples.append(lowerings[i].program.shape(id))
        }
        if samples.count == 1 { return samples[0].map { SymbolicDim($0) } }
        guard samples.allSatisfy({ $0.count == samples[0].count }) else {
            throw fail("the rank of '\(name)' changes with the batch size")
        }
        var result: [SymbolicDim] = []
        for d in samples[0].indices {
            let a = samples[1][d] - samples[0][d]
            let c = samples[0][d] - 2 * a
            guard samples[2][d] == 5 * a + c else {
                throw fail("dimension \(d) of '\(name)' is not linear in the batch size")
            }
            result.append(SymbolicDim(a: a, b: c))
        }
        return result
    }
}
