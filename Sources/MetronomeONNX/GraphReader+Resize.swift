import Metronome

/// Resize whose `sizes` depend on the symbolic batch.
extension GraphReader {
    /// Whether `node` is a Resize whose sizes are computed from the batch size.
    func hasBatchDependentSizes(_ node: Node) -> Bool {
        guard node.opType == "Resize", let s = input(node, 3), let t = ints[s] else { return false }
        return !t.isConstant
    }

    /// PyTorch's `F.interpolate(x, size=...)` exports `sizes = Concat(Shape(x)[:2], size)`,
    /// whose first entry is the symbolic batch. The leading entries that are the input's own
    /// extents keep those axes (batch and channels); the rest become a Resize of a trailing run of axes through
    /// opset 18's `axes` (counted from the end, so the exporter can rebuild full sizes from
    /// the input's shape), and the batch stays dynamic.
    mutating func resizeWithBatchDependentSizes(_ node: Node) throws {
        guard let x = input(node, 0), let sizesName = input(node, 3), let t = ints[sizesName] else {
            throw fail(node, "missing data or sizes")
        }
        guard node.attributes["axes"] == nil else {
            throw fail(node, "sizes \(t.values) depend on the batch size; with an axes attribute that is not supported")
        }
        let shape = try symbolicShape(x, for: node)
        guard t.shape.count == 1, t.values.count == shape.count else {
            throw fail(node, "sizes \(t.values) need one value per axis of the input \(shape)")
        }
        let lastComputed = t.values.lastIndex { $0.constant == nil } ?? -1
        for i in 0..<(lastComputed + 1) where t.values[i] != shape[i] {
            throw fail(node, "sizes \(t.values) depend on the batch size other than by keeping the input's extent \(shape)")
        }
        // Further leading entries equal to the input's extent are kept too (a resize by 1 is
        // the identity in every coordinate mode), so that the channel count is not named and
        // slimming can pass channels through; keep_aspect_ratio_policy scales every listed
        // axis alike, so there the listed axes stay as they are.
        var keep = lastComputed + 1
        let policy = node.attributes["keep_aspect_ratio_policy"]
        if policy == nil || policy == .string("stretch") {
            while keep < t.values.count && t.values[keep] == shape[keep] { keep += 1 }
        }
        let tail = Array(t.values[keep...])
        guard !tail.isEmpty else {
            // Every axis keeps its extent: the sizes name the input's own shape.
            let name = freshName(node.name + "_scales")
            graph.initializers[name] = Tensor(shape: [shape.count], repeating: 1)
            var n = node
            n.inputs = [x, "", name]
            return try generic(n)
        }
        let name = freshName(node.name + "_sizes")
        graph.integerConstants[name] = tail.compactMap(\.constant)
        var n = node
        n.inputs[3] = name
        n.attributes["axes"] = .ints(Array((-tail.count)...(-1)))
        try generic(n)
    }
}
