import Foundation
import Metronome

/// Translations of operators as older opsets (6–12) wrote them into the forms the engine
/// runs. They live with the importer rather than in the operators' files because they need
/// the importer's state: integer tensors known at import time, symbolic shapes, which
/// outputs later nodes read, and fresh value names.
extension GraphReader {

    mutating func dropUnusedOutputs(_ node: Node, keeping count: Int, what: String) throws -> Node {
        var node = node
        guard node.outputs.count > count else { return node }
        for extra in node.outputs[count...] where !extra.isEmpty && consumed.contains(extra) {
            throw fail(node, "the \(what) ('\(extra)') is not supported at inference")
        }
        node.outputs = Array(node.outputs.prefix(count))
        return node
    }

    mutating func dropout(_ node: Node) throws -> Node {
        var node = node
        if let v = input(node, 2) {
            let mode = try constantInts(node, 2, what: "training_mode") ?? []
            guard mode.allSatisfy({ $0 == 0 }) else { throw fail(node, "training_mode = true is not supported at inference") }
            _ = v
        }
        if let isTest = try intAttr(node, "is_test"), isTest == 0, opset < 7 {
            throw fail(node, "is_test = 0 (training) is not supported at inference")
        }
        node.attributes = [:]  // ratio, seed and is_test have no effect at inference
        node.inputs = [node.inputs[0]]
        return try dropUnusedOutputs(node, keeping: 1, what: "mask output")
    }

    /// Opset 6 binary operators and Gemm broadcast with `broadcast = 1` and an optional axis.
    mutating func legacyBroadcast(_ node: Node) throws -> Node {
        var node = node
        let broadcast = try intAttr(node, "broadcast") ?? 0
        node.attributes["broadcast"] = nil
        guard let axis = try intAttr(node, "axis") else { return node }
        node.attributes["axis"] = nil
        guard broadcast != 0, node.opType != "Gemm", let b = input(node, 1) else { return node }
        let aShape = try symbolicShape(node.inputs[0], for: node)
        let bShape = try symbolicShape(b, for: node)
        let a = axis < 0 ? axis + aShape.count : axis
        if a + bShape.count == aShape.count { return node }  // same as NumPy broadcasting
        guard let t = graph.initializers[b], a >= 0, a + t.rank <= aShape.count else {
            throw fail(node, "legacy broadcasting along axis \(axis) is supported only for a constant second input")
        }
        let renamed = freshName(b)
        graph.initializers[renamed] = try Tensor(shape: t.shape + Array(repeating: 1, count: aShape.count - a - t.rank),
                                                 scalars: t.scalars)
        node.inputs[1] = renamed
        return node
    }

    /// PRelu before opset 7 applies a one-dimensional slope of C values per channel (axis 1)
    /// rather than broadcasting it against the last axis: the constant slope is reshaped to
    /// `[C, 1, …]`.
    mutating func legacyPRelu(_ node: Node) throws -> Node {
        var node = node
        guard let x = input(node, 0), let s = input(node, 1), let t = graph.initializers[s],
              t.rank == 1, t.count > 1 else { return node }
        let shape = try symbolicShape(x, for: node)
        guard shape.count >= 2 else { return node }
        let renamed = freshName(s)
        graph.initializers[renamed] = try Tensor(shape: [t.count] + Array(repeating: 1, count: shape.count - 2),
                                                 scalars: t.scalars)
        node.inputs[1] = renamed
        return node
    }

    /// Softmax before opset 13 flattens the input to 2-D at `axis` (default 1).
    mutating func legacySoftmax(_ node: Node) throws {
        guard let x = input(node, 0), node.outputs.count == 1 else { throw fail(node, "expects one input and one output") }
        let shape = try symbolicShape(x, for: node)
        let rank = shape.count
        let axis = try intAttr(node, "axis") ?? 1
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw fail(node, "axis \(axis) is out of range for rank \(rank)") }
        if a == rank - 1 {
            var n = node
            n.attributes["axis"] = .int(-1)
            try generic(n)
            return
        }
        guard let rows = try product(Array(shape[..<a])), let cols = try product(Array(shape[a...])) else {
            throw fail(node, "the flattened shape is not linear in the batch size")
        }
        let flat = freshName(node.name + "_flat"), soft = freshName(node.name + "_softmax")
        let target = try reshapeTarget(shape, input: [rows, cols], node: node)
        let shapeName = freshName(node.name + "_shape")
        graph.integerConstants[shapeName] = target
        try generic(Node(name: flat, opType: "Flatten", inputs: [x], outputs: [flat], attributes: ["axis": .int(a)]))
        try generic(Node(name: soft, opType: "Softmax", inputs: [flat], outputs: [soft], attributes: ["axis": .int(1)]))
        try generic(Node(name: node.name, opType: "Reshape", inputs: [soft, shapeName], outputs: node.outputs))
    }

    /// Pad (opset 18) with an axes input: expanded to pads for every axis.
    mutating func padWithAxes(_ node: Node) throws {
        guard let x = input(node, 0) else { throw fail(node, "missing data") }
        guard let axes = try constantInts(node, 3, what: "axes"), let pads = try constantInts(node, 1, what: "pads") else {
            throw fail(node, "pads and axes must be constants")
        }
        let rank = try symbolicShape(x, for: node).count
        guard pads.count == 2 * axes.count else { throw fail(node, "pads \(pads) need \(2 * axes.count) values for axes \(axes)") }
        var full = Array(repeating: 0, count: 2 * rank)
        for (k, axis) in axes.enumerated() {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else { throw fail(node, "axis \(axis) is out of range for rank \(rank)") }
            full[a] = pads[k]
            full[a + rank] = pads[k + axes.count]
        }
        let name = freshName(node.name + "_pads")
        graph.integerConstants[name] = full
        var n = node
        n.inputs = [x, name] + (input(node, 2).map { [$0] } ?? [])
        try generic(n)
    }
}
