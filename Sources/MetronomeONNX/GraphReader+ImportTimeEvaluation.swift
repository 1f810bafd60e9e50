import Foundation
import Metronome
import SwiftProtobuf

/// Operators the importer evaluates itself, on constants and shape values: Constant,
/// ConstantOfShape, Shape, Size, Gather, Squeeze/Unsqueeze, Cast, Range, ReduceProd, and
/// integer arithmetic, Concat and Slice. They never reach the engine.
extension GraphReader {
    /// ConstantOfShape: a constant tensor of a computed shape.
    mutating func constantOfShape(_ node: Node, tensors: [String: Onnx_TensorProto]) throws {
        guard let dims = try constantInts(node, 0, what: "shape") else { throw fail(node, "missing shape input") }
        let count = try foldedCount(dims, node, what: "shape")
        var fill = DecodedTensor.float(Tensor(shape: [1], repeating: 0))
        if let t = tensors["value"] { fill = try decoder.decode(t, name: node.name + ".value") }
        switch fill {
        case .float(let t):
            guard t.count == 1 else { throw fail(node, "value must hold one element") }
            graph.initializers[node.outputs[0]] = Tensor(shape: dims, repeating: t.scalars[0])
        case .int(let t):
            guard t.values.count == 1 else { throw fail(node, "value must hold one element") }
            ints[node.outputs[0]] = IntTensor(shape: dims, values: Array(repeating: t.values[0], count: count))
        }
    }

    /// Shape (with `start`/`end`): the symbolic shape of a value.
    mutating func evaluateShape(_ node: Node) throws {
        guard let x = input(node, 0) else { throw fail(node, "missing input") }
        let shape = try symbolicShape(x, for: node)
        let r = shape.count
        func clampIndex(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
        let start = clampIndex(try intAttr(node, "start") ?? 0)
        let end = clampIndex(try intAttr(node, "end") ?? r)
        let part = start < end ? Array(shape[start..<end]) : []
        ints[node.outputs[0]] = IntTensor(shape: [part.count], values: part)
    }

    /// Size: the element count, when it is linear in the batch size.
    mutating func evaluateSize(_ node: Node) throws {
        guard let x = input(node, 0) else { throw fail(node, "missing input") }
        guard let total = try product(try symbolicShape(x, for: node)) else {
            throw fail(node, "the element count is not linear in the batch size")
        }
        ints[node.outputs[0]] = IntTensor(shape: [], values: [total])
    }

    /// Identity of a constant: the same constant under another name.
    mutating func constantIdentity(_ node: Node) throws {
        if let t = ints[node.inputs[0]] { ints[node.outputs[0]] = t }
        if let t = graph.initializers[node.inputs[0]] { graph.initializers[node.outputs[0]] = t }
    }

    /// Range on constant integer scalars.
    mutating func evaluateRange(_ node: Node) throws {
        guard let s = try constantInts(node, 0, what: "start"), let l = try constantInts(node, 1, what: "limit"),
              let d = try constantInts(node, 2, what: "delta"), s.count == 1, l.count == 1, d.count == 1, d[0] != 0 else {
            throw fail(node, "Range is evaluated only on constant integer scalars")
        }
        // ceil((limit - start) / delta) elements, computed without overflow; never truncated.
        let (span, spanOverflow) = l[0].subtractingReportingOverflow(s[0])
        guard !spanOverflow else { throw fail(node, "Range(\(s[0]), \(l[0]), \(d[0])) overflows 64-bit integers") }
        let count = (span > 0) != (d[0] > 0) || span == 0 ? 0 : span / d[0] + (span % d[0] != 0 ? 1 : 0)
        guard count <= Self.maxFoldedElements else {
            throw fail(node, "Range(\(s[0]), \(l[0]), \(d[0])) has \(count) elements, more than the \(Self.maxFoldedElements) evaluated at import time")
        }
        // Every value lies between start and limit, so s + i·d does not overflow.
        ints[node.outputs[0]] = IntTensor(shape: [count], ints: (0..<count).map { s[0] + $0 * d[0] })
    }

    /// ReduceProd of a 1-D integer shape value (an element count).
    mutating func evaluateReduceProd(_ node: Node) throws {
        guard let x = input(node, 0), let t = ints[x] else {
            throw fail(node, "ReduceProd is evaluated only on integer shape values; it is not a run-time operator")
        }
        guard t.shape.count <= 1, (try intsAttr(node, "axes") ?? [0]).allSatisfy({ $0 == 0 || $0 == -1 }) else {
            throw fail(node, "only the full product of a 1-D shape value is supported")
        }
        guard let p = try product(t.values) else { throw fail(node, "the product is not linear in the batch size") }
        let keep = try intAttr(node, "keepdims") ?? 1
        ints[node.outputs[0]] = IntTensor(shape: keep != 0 ? [1] : [], values: [p])
    }


    mutating func constantNode(_ node: Node, tensors: [String: Onnx_TensorProto]) throws {
        guard node.outputs.count == 1 else { throw fail(node, "needs exactly one output") }
        let out = node.outputs[0]
        if let t = tensors["value"] {
            try store(try decoder.decode(t, name: out), as: out)
            elementTypes[out] = t.dataType
            return
        }
        switch (node.attributes.first?.key, node.attributes.first?.value) {
        case ("value_float", .float(let f)?): graph.initializers[out] = Tensor(shape: [], repeating: f)
        case ("value_floats", .floats(let f)?): graph.initializers[out] = try Tensor(shape: [f.count], scalars: f)
        case ("value_int", .int(let i)?): ints[out] = IntTensor(shape: [], ints: [i])
        case ("value_ints", .ints(let i)?): ints[out] = IntTensor(shape: [i.count], ints: i)
        case (let key?, _):
            throw fail(node, "value attribute '\(key)' is not supported (value, value_float(s) and value_int(s) are)")
        default:
            throw fail(node, "has no value")
        }
    }


    mutating func squeeze(_ node: Node) throws {
        guard let x = input(node, 0), node.outputs.count == 1 else { throw fail(node, "expects one data input and one output") }
        var axes = try intsAttr(node, "axes")
        if let a = try constantInts(node, 1, what: "axes") { axes = a }
        let inShape = try symbolicShape(x, for: node)
        var outShape: [SymbolicDim]
        if node.opType == "Unsqueeze" {
            guard let axes else { throw fail(node, "missing axes") }
            let rank = inShape.count + axes.count
            let norm = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            guard norm.count == axes.count, norm.allSatisfy({ $0 >= 0 && $0 < rank }) else { throw fail(node, "invalid axes \(axes) for output rank \(rank)") }
            var it = inShape.makeIterator()
            outShape = (0..<rank).map { norm.contains($0) ? SymbolicDim(1) : it.next()! }
        } else {
            let rank = inShape.count
            let norm: Set<Int>
            if let axes {
                norm = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
                guard norm.allSatisfy({ $0 >= 0 && $0 < rank && inShape[$0] == SymbolicDim(1) }) else {
                    throw fail(node, "axes \(axes) do not all name dimensions of size 1 in \(inShape)")
                }
            } else {
                guard inShape.allSatisfy({ $0.constant != nil }) else {
                    throw fail(node, "Squeeze without axes on a batch-dependent shape \(inShape) is ambiguous; give axes")
                }
                norm = Set(inShape.indices.filter { inShape[$0] == SymbolicDim(1) })
            }
            outShape = inShape.indices.filter { !norm.contains($0) }.map { inShape[$0] }
        }
        let out = node.outputs[0]
        if let t = ints[x] {
            ints[out] = IntTensor(shape: outShape.map(\.b), values: t.values)
        } else if let t = graph.initializers[x] {
            graph.initializers[out] = try Tensor(shape: outShape.map(\.b), scalars: t.scalars)
        } else {
            let target = try reshapeTarget(outShape, input: inShape, node: node)
            let shapeName = freshName(node.name + "_shape")
            graph.integerConstants[shapeName] = target
            emit(Node(name: node.name, opType: "Reshape", inputs: [x, shapeName], outputs: [out]))
        }
    }

    mutating func cast(_ node: Node) throws {
        guard let x = input(node, 0), node.outputs.count == 1 else { throw fail(node, "expects one input and one output") }
        guard let to = try intAttr(node, "to"), let type = Onnx_TensorProto.DataType(rawValue: to) else {
            throw fail(node, "missing or unknown 'to' type")
        }
        let toFloat = [.float, .double, .float16, .bfloat16].contains(type)
        let toInt = [.int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool].contains(type)
        guard toFloat || toInt else { throw fail(node, "casting to \(type.name) is not supported") }
        let out = node.outputs[0]
        if let t = ints[x] {
            if toInt {
                ints[out] = type == .bool ? IntTensor(shape: t.shape, values: t.values.map { SymbolicDim($0 == SymbolicDim(0) ? 0 : 1) }) : t
            } else {
                guard let c = t.constants else { throw fail(node, "a batch-dependent integer cannot become float data") }
                graph.initializers[out] = try Tensor(shape: t.shape, scalars: c.map { Float($0) })
            }
        } else if let t = graph.initializers[x] {
            if toFloat { graph.initializers[out] = t }
            else if type == .bool { ints[out] = IntTensor(shape: t.shape, ints: t.scalars.map { $0 != 0 ? 1 : 0 }) }
            else { ints[out] = IntTensor(shape: t.shape, ints: try integers(t, node, what: "input '\(x)'")) }
        } else {
            guard type == .float else {
                throw fail(node, "casting computed data to \(type.name) is not supported; Metronome computes float32 only")
            }
            emit(Node(name: node.name, opType: "Identity", inputs: [x], outputs: [out]))
        }
    }

    mutating func gather(_ node: Node) throws {
        guard node.inputs.count == 2, let x = input(node, 0), let idx = input(node, 1) else {
            throw fail(node, "expects 2 inputs (data, indices)")
        }
        guard let indicesTensor = ints[idx], let indices = indicesTensor.constants else {
            throw fail(node, "Gather needs constant indices; here the indices '\(idx)' are computed")
        }
        let axis = try intAttr(node, "axis") ?? 0
        if let t = ints[x] {
            let (shape, values) = try gatherArray(t.values, shape: t.shape, indices: indices, indicesShape: indicesTensor.shape, axis: axis, node: node)
            ints[node.outputs[0]] = IntTensor(shape: shape, values: values)
        } else if let t = graph.initializers[x] {
            let (shape, values) = try gatherArray(t.scalars, shape: t.shape, indices: indices, indicesShape: indicesTensor.shape, axis: axis, node: node)
            graph.initializers[node.outputs[0]] = try Tensor(shape: shape, scalars: values)
        } else if runtime.contains(x) {
            // Computed data: a run-time Gather with the indices as a constant.
            let name = freshName(idx)
            graph.integerConstants[name] = indices
            var n = node
            n.inputs = [x, name]
            n.attributes["indices_shape"] = .ints(indicesTensor.shape)
            emit(n)
        } else {
            throw fail(node, "input '\(x)' is not defined")
        }
    }

    func gatherArray<T>(_ data: [T], shape: [Int], indices: [Int], indicesShape: [Int], axis: Int, node: Node) throws -> ([Int], [T]) {
        guard !shape.isEmpty else { throw fail(node, "cannot gather from a scalar") }
        let a = axis < 0 ? axis + shape.count : axis
        guard a >= 0 && a < shape.count else { throw fail(node, "axis \(axis) is out of range for shape \(shape)") }
        let outer = shape[..<a].reduce(1, *), dim = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        _ = try foldedCount(Array(shape[..<a]) + indicesShape + Array(shape[(a + 1)...]), node, what: "output shape")
        guard indices.count == indicesShape.reduce(1, *), data.count == outer * dim * inner else {
            throw fail(node, "inconsistent data or indices shape")
        }
        var out: [T] = []
        out.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for i in indices {
                let j = i < 0 ? i + dim : i
                guard j >= 0 && j < dim else { throw fail(node, "index \(i) is out of range for dimension \(dim)") }
                out.append(contentsOf: data[((o * dim + j) * inner)..<((o * dim + j + 1) * inner)])
            }
        }
        return (Array(shape[..<a]) + indicesShape + Array(shape[(a + 1)...]), out)
    }

    mutating func integerArithmetic(_ node: Node) throws {
        guard node.inputs.count == 2, let x = input(node, 0), let y = input(node, 1) else { throw fail(node, "expects 2 inputs") }
        func operand(_ v: String) throws -> IntTensor {
            if let t = ints[v] { return t }
            if let t = graph.initializers[v], t.scalars.allSatisfy({ $0 == $0.rounded() }) {
                return IntTensor(shape: t.shape, ints: try integers(t, node, what: "input '\(v)'"))
            }
            throw fail(node, "mixes an integer shape value with computed float data '\(v)'; integer arithmetic is evaluated at import time only")
        }
        let a = try operand(x), b = try operand(y)
        let rank = max(a.shape.count, b.shape.count)
        let pa = Array(repeating: 1, count: rank - a.shape.count) + a.shape
        let pb = Array(repeating: 1, count: rank - b.shape.count) + b.shape
        var shape: [Int] = []
        for (p, q) in zip(pa, pb) {
            guard p == q || p == 1 || q == 1 else { throw fail(node, "shapes \(a.shape) and \(b.shape) cannot be broadcast") }
            // A size-1 dimension takes the other's size, including 0 (`max` would make a
            // 0-by-1 broadcast 1 long and index past the empty operand; found by fuzz-onnx).
            shape.append(p == 1 ? q : p)
        }
        let count = try foldedCount(shape, node, what: "broadcast shape")
        guard a.values.count == pa.reduce(1, *), b.values.count == pb.reduce(1, *) else {
            throw fail(node, "operand values do not match their shapes")
        }
        func index(_ flat: Int, _ s: [Int]) -> Int {
            var rem = flat, idx = 0, strideAcc = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                let i = rem % shape[d]
                rem /= shape[d]
                if s[d] != 1 { idx += i * strideAcc }
                strideAcc *= s[d]
            }
            return idx
        }
        var values: [SymbolicDim] = []
        for k in 0..<count {
            let u = a.values[index(k, pa)], v = b.values[index(k, pb)]
            let r: SymbolicDim?
            switch node.opType {
            case "Add": r = u + v
            case "Sub": r = u - v
            case "Mul": r = u * v
            default: r = u / v
            }
            guard let r else {
                throw fail(node, "\(u) \(node.opType) \(v) overflows 64-bit integers or is not expressible as a linear function of the batch size")
            }
            values.append(r)
        }
        ints[node.outputs[0]] = IntTensor(shape: shape, values: values)
    }

    mutating func integerConcat(_ node: Node) throws {
        var parts: [IntTensor] = []
        for v in node.inputs where !v.isEmpty {
            if let t = ints[v] { parts.append(t) }
            else if let t = graph.initializers[v], t.count == 0 { parts.append(IntTensor(shape: t.shape, ints: [])) }
            else { throw fail(node, "concatenates integer shape values with float data '\(v)'") }
        }
        guard let axis = try intAttr(node, "axis") else { throw fail(node, "missing attribute 'axis'") }
        guard let first = parts.first, !first.shape.isEmpty else { throw fail(node, "cannot concatenate scalars") }
        let rank = first.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank, parts.allSatisfy({ $0.shape.count == rank }) else { throw fail(node, "invalid axis \(axis)") }
        for p in parts {
            guard p.shape.indices.allSatisfy({ $0 == a || p.shape[$0] == first.shape[$0] }), p.values.count == p.shape.reduce(1, *) else {
                throw fail(node, "shapes \(parts.map(\.shape)) differ outside axis \(axis)")
            }
        }
        let outer = first.shape[..<a].reduce(1, *)
        var shape = first.shape
        shape[a] = parts.reduce(0) { $0 + $1.shape[a] }
        _ = try foldedCount(shape, node, what: "output shape")
        var values: [SymbolicDim] = []
        for o in 0..<outer {
            for p in parts {
                let chunk = p.shape[a...].reduce(1, *)
                values.append(contentsOf: p.values[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        ints[node.outputs[0]] = IntTensor(shape: shape, values: values)
    }

    mutating func integerSlice(_ node: Node) throws {
        guard let x = input(node, 0), let t = ints[x] else { throw fail(node, "missing data") }
        guard t.shape.count == 1 else { throw fail(node, "slicing integer tensors of rank \(t.shape.count) is not supported") }
        var starts = try intsAttr(node, "starts"), ends = try intsAttr(node, "ends")
        var axes = try intsAttr(node, "axes")
        var steps: [Int]? = nil
        if let s = try constantInts(node, 1, what: "starts") { starts = s }
        if let e = try constantInts(node, 2, what: "ends") { ends = e }
        if let a = try constantInts(node, 3, what: "axes") { axes = a }
        if let s = try constantInts(node, 4, what: "steps") { steps = s }
        guard let starts, let ends, starts.count == 1, ends.count == 1, (axes ?? [0]).allSatisfy({ $0 == 0 || $0 == -1 }) else {
            throw fail(node, "only slices along the single axis of a 1-D integer tensor are supported")
        }
        let step = steps?.first ?? 1
        guard step != 0 else { throw fail(node, "step 0") }
        let n = t.values.count
        var values: [SymbolicDim] = []
        if step > 0 {
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + n : v, 0), n) }
            var i = clamp(starts[0])
            let e = clamp(ends[0])
            while i < e {
                values.append(t.values[i])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        } else {
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + n : v, -1), n - 1) }
            var i = clamp(starts[0])
            let e = clamp(ends[0])
            while i > e {
                values.append(t.values[i])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        }
        ints[node.outputs[0]] = IntTensor(shape: [values.count], values: values)
    }
}
