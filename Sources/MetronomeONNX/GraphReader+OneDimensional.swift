import Metronome

/// 1-D ConvTranspose (NCW data, as audio and sequence CNNs export it) becomes its 2-D form on a
/// height of one: `Reshape [N, C, 1, W] → ConvTranspose (kernel [1, k], pads [0, b, 0, e], …) →
/// Reshape [N, C', W']`; the reshapes only rename bytes. (Conv and pooling take 1-D data
/// themselves; ConvTranspose's engine is 2-D.)
extension GraphReader {
    static let oneDimensionalOperators: Set<String> = ["ConvTranspose"]

    /// Whether `node` is one of those operators on rank-3 data.
    mutating func isOneDimensional(_ node: Node) throws -> Bool {
        guard Self.oneDimensionalOperators.contains(node.opType), let x = input(node, 0), runtime.contains(x) else { return false }
        return try symbolicShape(x, for: node).count == 3
    }

    mutating func oneDimensional(_ node: Node) throws {
        let x = node.inputs[0]
        var planar = node
        // Attributes: one more spatial axis of extent 1 in front.
        for (key, extra) in [("kernel_shape", 1), ("strides", 1), ("dilations", 1), ("output_shape", 1)] {
            if let v = try intsAttr(node, key) {
                guard v.count == 1 else { throw fail(node, "attribute '\(key)' has \(v.count) values for 1-D data; it needs 1") }
                planar.attributes[key] = .ints([extra] + v)
            }
        }
        if let v = try intsAttr(node, "output_padding") {
            guard v.count == 1 else { throw fail(node, "attribute 'output_padding' has \(v.count) values for 1-D data; it needs 1") }
            planar.attributes["output_padding"] = .ints([0] + v)
        }
        if let v = try intsAttr(node, "pads") {
            guard v.count == 2 else { throw fail(node, "attribute 'pads' has \(v.count) values for 1-D data; it needs 2 (begin, end)") }
            planar.attributes["pads"] = .ints([0, v[0], 0, v[1]])
        }
        // The weight of a convolution: [M, C/group, k] → [M, C/group, 1, k].
        let x4 = freshName(x + "_nchw"), shapeIn = freshName(node.name + "_nchw_shape")
        ints[shapeIn] = IntTensor(shape: [4], ints: [0, 0, 1, -1])
        if node.opType == "Conv" || node.opType == "ConvTranspose", let w = input(node, 1) {
            guard try symbolicShape(w, for: node).count == 3 else {
                throw fail(node, "the weight of a 1-D convolution must be 3-D [M, C/group, k]")
            }
            // A constant weight is reshaped now; a computed one by a Reshape step.
            let w4 = freshName(w + "_nchw")
            try reshape(Node(name: freshName(node.name + "_weight_to_2d"), opType: "Reshape", inputs: [w, shapeIn], outputs: [w4]))
            planar.inputs[1] = w4
        }
        try reshape(Node(name: freshName(node.name + "_to_2d"), opType: "Reshape", inputs: [x, shapeIn], outputs: [x4]))
        planar.inputs[0] = x4
        let y = node.outputs[0], y4 = freshName(y + "_nchw")
        planar.outputs = [y4] + node.outputs.dropFirst()
        try handle(planar, tensors: [:])
        let shapeOut = freshName(node.name + "_ncw_shape")
        ints[shapeOut] = IntTensor(shape: [3], ints: [0, 0, -1])
        try reshape(Node(name: freshName(node.name + "_to_1d"), opType: "Reshape", inputs: [y4, shapeOut], outputs: [y]))
    }

    /// MatMul with a 1-D operand (numpy semantics): a 1-D first operand is a row `[1, K]`, a
    /// 1-D second one a column `[K, 1]`, and the dimension added for it is removed from the
    /// result again.
    mutating func isOneDimensionalMatMul(_ node: Node) throws -> Bool {
        guard node.opType == "MatMul", node.inputs.count == 2, let a = input(node, 0), let b = input(node, 1),
              isDefined(a), isDefined(b), ints[a] == nil, ints[b] == nil else { return false }
        return try symbolicShape(a, for: node).count == 1 || symbolicShape(b, for: node).count == 1
    }

    mutating func oneDimensionalMatMul(_ node: Node) throws {
        let (a, b) = (node.inputs[0], node.inputs[1])
        let ra = try symbolicShape(a, for: node).count, rb = try symbolicShape(b, for: node).count
        var inputs = [a, b]
        for (i, (v, rank, target)) in [(a, ra, [1, -1]), (b, rb, [-1, 1])].enumerated() where rank == 1 {
            let shape = freshName(node.name + "_operand\(i)_shape"), out = freshName(v + "_2d")
            ints[shape] = IntTensor(shape: [2], ints: target)
            try reshape(Node(name: freshName(node.name + "_operand\(i)_to_2d"), opType: "Reshape", inputs: [v, shape], outputs: [out]))
            inputs[i] = out
        }
        let product = freshName(node.outputs[0] + "_2d")
        try handle(Node(name: node.name, opType: "MatMul", inputs: inputs, outputs: [product], attributes: node.attributes), tensors: [:])
        let shape = try symbolicShape(product, for: node)
        // Drop the added row (second to last) and/or column (last) dimension.
        var keep = Array(shape.indices)
        if rb == 1 { keep.removeLast() }
        if ra == 1 { keep.remove(at: keep.count - 1 - (rb == 1 ? 0 : 1)) }
        // Leading (batch) dimensions keep their positions and are copied with 0; the matrix
        // dimensions left must be constants.
        let resolved = try keep.map { d -> Int in
            if d < shape.count - 2 { return 0 }
            guard let c = shape[d].constant else { throw fail(node, "the result's dimension \(d) depends on the batch size") }
            return c
        }
        let shapeName = freshName(node.name + "_result_shape")
        ints[shapeName] = IntTensor(shape: [resolved.count], ints: resolved)
        try reshape(Node(name: freshName(node.name + "_to_result"), opType: "Reshape", inputs: [product, shapeName], outputs: [node.outputs[0]]))
    }
}
