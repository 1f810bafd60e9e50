import Foundation
import Metronome

/// Symbolic shapes during import: the shape of any value read so far as ``SymbolicDim``s,
/// and Reshape targets computed from them.
extension GraphReader {

    /// The shape of a value, with the batch size symbolic when the inputs' first dimension is.
    /// Found by ``SymbolicShapes``, which lowers each node read so far once (at three batch
    /// sizes when the batch is symbolic).
    mutating func symbolicShape(_ v: String, for node: Node) throws -> [SymbolicDim] {
        if let t = graph.initializers[v] { return t.shape.map { SymbolicDim($0) } }
        if let t = ints[v] { return t.shape.map { SymbolicDim($0) } }
        if let s = shapeCache[v] { return s }
        if let bad = graph.inputs.first(where: { $0.shape.dropFirst().contains { $0 < 0 } }) {
            throw fail(node, "needs the shape of '\(v)', which depends on the dynamic dimensions of input '\(bad.name)' \(bad.shape); give concrete input shapes (metronome infer does)")
        }
        let result = try shapes.shape(of: v, in: graph) { MetronomeError.node(node: node.name, op: node.opType, message: $0) }
        shapeCache[v] = result
        return result
    }

    /// Most elements a tensor evaluated at import time (ConstantOfShape, Range, Gather,
    /// integer arithmetic and Concat) may have: 2^24, 64 MiB of float32. Shape computations
    /// need a handful; a hostile file must not make the importer allocate gigabytes.
    static let maxFoldedElements = 1 << 24

    /// The element count of `dims`, checked for negative sizes, overflow and the import-time cap.
    func foldedCount(_ dims: [Int], _ node: Node, what: String) throws -> Int {
        var count = 1
        for d in dims {
            guard d >= 0 else { throw fail(node, "\(what) \(dims.prefix(16)) has a negative dimension") }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= Self.maxFoldedElements else {
                throw fail(node, "\(what) \(dims.prefix(16)) has more than the \(Self.maxFoldedElements) elements evaluated at import time")
            }
            count = p
        }
        return count
    }

    func product(_ values: [SymbolicDim]) throws -> SymbolicDim? {
        var p = SymbolicDim(1)
        for v in values {
            guard let q = p * v else { return nil }
            p = q
        }
        return p
    }

    /// Integer Reshape target for run-time data: batch-dependent entries become 0 (copy the
    /// input's dimension) or -1 (inferred), which ONNX and the engine both understand.
    func reshapeTarget(_ target: [SymbolicDim], input: [SymbolicDim], node: Node) throws -> [Int] {
        var out: [Int] = []
        var open: [Int] = []
        for (i, t) in target.enumerated() {
            if let c = t.constant {
                out.append(c)
            } else if i < input.count && input[i] == t {
                out.append(0)
            } else {
                out.append(-1)
                open.append(i)
            }
        }
        if open.isEmpty { return out }
        guard open.count == 1, out.filter({ $0 == -1 }).count == 1 else {
            throw fail(node, "target shape \(target) depends on the batch size in a way a Reshape cannot express; export with a fixed batch or pass concrete input shapes")
        }
        return out
    }

    mutating func reshape(_ node: Node) throws {
        guard node.inputs.count == 2, let x = input(node, 0), let s = input(node, 1) else {
            throw fail(node, "expects 2 inputs (data, shape), got \(node.inputs.count)")
        }
        let allowZero = try intAttr(node, "allowzero") ?? 0
        var node = node
        node.attributes["allowzero"] = nil
        guard let target = try ints[s]?.values ?? graph.initializers[s].map({ try integers($0, node, what: "shape '\(s)'").map { SymbolicDim($0) } }) else {
            throw fail(node, "the shape (input '\(s)') must be a constant or computed from shapes; computed shapes are not supported")
        }
        if allowZero != 0 && target.contains(SymbolicDim(0)) {
            throw fail(node, "allowzero = 1 with a zero in the target shape is not supported")
        }
        let inputShape = try symbolicShape(x, for: node)
        if let t = ints[x] {
            guard let c = target.map(\.constant) as? [Int] else { throw fail(node, "batch-dependent reshape of an integer tensor") }
            let shape = try resolveStatic(c, from: t.shape, node: node)
            ints[node.outputs[0]] = IntTensor(shape: shape, values: t.values)
            return
        }
        let resolved = try reshapeTarget(target, input: inputShape, node: node)
        if let t = graph.initializers[x] {
            let shape = try resolveStatic(resolved, from: t.shape, node: node)
            graph.initializers[node.outputs[0]] = try Tensor(shape: shape, scalars: t.scalars)
            return
        }
        let name = ints[s]?.constants == resolved ? s : freshName(s)
        graph.integerConstants[name] = resolved
        node.inputs[1] = name
        emit(node)
    }

    /// ONNX Reshape semantics (0 copies, -1 infers) on a known shape.
    func resolveStatic(_ target: [Int], from shape: [Int], node: Node) throws -> [Int] {
        var out = target.enumerated().map { $0.element == 0 && $0.offset < shape.count ? shape[$0.offset] : $0.element }
        let total = shape.reduce(1, *)
        let unknown = out.indices.filter { out[$0] == -1 }
        guard unknown.count <= 1, out.allSatisfy({ $0 >= -1 }) else { throw fail(node, "invalid target shape \(target)") }
        if let u = unknown.first {
            let known = out.filter { $0 != -1 }.reduce(1, *)
            guard known > 0, total % known == 0 else { throw fail(node, "cannot reshape \(shape) to \(target)") }
            out[u] = total / known
        }
        guard out.reduce(1, *) == total else { throw fail(node, "cannot reshape \(shape) to \(target)") }
        return out
    }
}
