/// Output shapes of each operator, with checks that name the node on any mismatch.
/// Also resolves what depends on input shapes: `auto_pad`, negative axes, Reshape's `0`
/// and `-1`, Split's equal parts and Slice's clamped bounds.
enum ShapeInference {
    static func infer(_ op: Op, inputs: [[Int]], node: Node) throws -> (Op, [[Int]]) {
        func fail(_ m: String) -> MetronomeError { .node(node: node.name, op: node.opType, message: m) }
        func normalize(_ axis: Int, rank: Int) throws -> Int {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else { throw fail("axis \(axis) is out of range for rank \(rank)") }
            return a
        }
        let x = inputs[0]

        switch op {
        case .conv(var a):
            guard x.count == 4 else { throw fail("input must be 4-D NCHW, got shape \(x)") }
            let w = inputs[1]
            guard w.count == 4 else { throw fail("weight must be 4-D [M, C/group, kH, kW], got shape \(w)") }
            if a.kernel == [0, 0] { a.kernel = [w[2], w[3]] }
            guard a.kernel == [w[2], w[3]] else {
                throw fail("kernel_shape \(a.kernel) does not match weight shape \(w)")
            }
            guard x[1] == w[1] * a.groups else {
                throw fail("input has \(x[1]) channels but weight \(w) with group \(a.groups) expects \(w[1] * a.groups)")
            }
            guard w[0] % a.groups == 0 else {
                throw fail("\(w[0]) output channels are not divisible by group \(a.groups)")
            }
            if inputs.count == 3 && inputs[2] != [w[0]] {
                throw fail("bias has shape \(inputs[2]) but must be [\(w[0])]")
            }
            a.pads = try resolvePads(a.pads, input: [x[2], x[3]], kernel: a.kernel, strides: a.strides,
                                     dilations: a.dilations, fail: fail)
            let out = try (0..<2).map { i -> Int in
                let ext = (a.kernel[i] - 1) * a.dilations[i] + 1
                let padded = x[2 + i] + a.pads[i] + a.pads[i + 2]
                guard padded >= ext else {
                    throw fail("kernel extent \(ext) is larger than the padded input \(padded) (input shape \(x))")
                }
                return (padded - ext) / a.strides[i] + 1
            }
            return (.conv(a), [[x[0], w[0]] + out])

        case .batchNorm:
            guard x.count >= 2 else { throw fail("input must have a channel dimension, got shape \(x)") }
            for (i, s) in inputs.dropFirst().enumerated() where s != [x[1]] {
                let names = ["scale", "bias", "mean", "variance"]
                throw fail("\(names[i]) has shape \(s) but must be [\(x[1])]")
            }
            return (op, [x])

        case .eltwise, .identity:
            return (op, [x])

        case .maxPool(var a), .averagePool(var a, _):
            guard x.count == 4 else { throw fail("input must be 4-D NCHW, got shape \(x)") }
            a.pads = try resolvePads(a.pads, input: [x[2], x[3]], kernel: a.kernel, strides: a.strides,
                                     dilations: a.dilations, fail: fail)
            guard a.kernel.allSatisfy({ $0 >= 1 }), a.strides.allSatisfy({ $0 >= 1 }) else {
                throw fail("kernel and strides must be positive")
            }
            for i in 0..<2 where a.pads[i] >= a.kernel[i] || a.pads[i + 2] >= a.kernel[i] {
                throw fail("pads \(a.pads) must be smaller than the kernel \(a.kernel)")
            }
            let out = try (0..<2).map { i -> Int in
                let ext = (a.kernel[i] - 1) * a.dilations[i] + 1
                let span = x[2 + i] + a.pads[i] + a.pads[i + 2] - ext
                guard span >= 0 else { throw fail("kernel \(a.kernel) is larger than the padded input \(x)") }
                var o = (a.ceilMode ? (span + a.strides[i] - 1) / a.strides[i] : span / a.strides[i]) + 1
                // A window may not start in the end padding (PyTorch's and ONNX's ceil rule).
                if a.ceilMode && (o - 1) * a.strides[i] >= x[2 + i] + a.pads[i] { o -= 1 }
                return o
            }
            let shape = [x[0], x[1]] + out
            if case .averagePool(_, let include) = op { return (.averagePool(a, countIncludePad: include), [shape]) }
            return (.maxPool(a), [shape])

        case .globalAveragePool:
            guard x.count == 4 else { throw fail("input must be 4-D NCHW, got shape \(x)") }
            return (op, [[x[0], x[1], 1, 1]])

        case .binary:
            guard let shape = broadcast(x, inputs[1]) else {
                throw fail("shapes \(x) and \(inputs[1]) cannot be broadcast together")
            }
            return (op, [shape])

        case .concat(let axis):
            let a = try normalize(axis, rank: x.count)
            var out = x
            out[a] = 0
            for s in inputs {
                guard s.count == x.count,
                      s.indices.allSatisfy({ $0 == a || s[$0] == x[$0] }) else {
                    throw fail("cannot concatenate shapes \(inputs) along axis \(axis)")
                }
                out[a] += s[a]
            }
            return (.concat(axis: a), [out])

        case .split(let axis, var sizes):
            let a = try normalize(axis, rank: x.count)
            if sizes.allSatisfy({ $0 == -1 }) {
                let parts = sizes.count
                guard parts > 0 else { throw fail("split needs at least one output") }
                let chunk = (x[a] + parts - 1) / parts
                sizes = (0..<parts).map { min(chunk, max(0, x[a] - $0 * chunk)) }
            }
            guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == x[a] else {
                throw fail("split sizes \(sizes) do not add up to dimension \(a) of shape \(x)")
            }
            return (.split(axis: a, sizes: sizes), sizes.map { var s = x; s[a] = $0; return s })

        case .slice(let starts, let ends, let axes, let steps):
            var out = x
            var rStarts: [Int] = [], rEnds: [Int] = [], rAxes: [Int] = []
            for i in starts.indices {
                let a = try normalize(axes[i], rank: x.count)
                guard !rAxes.contains(a) else { throw fail("axis \(axes[i]) is sliced twice") }
                let dim = x[a]
                func clamp(_ v: Int) -> Int { let w = v < 0 ? v + dim : v; return min(max(w, 0), dim) }
                let s = clamp(starts[i]), e = clamp(ends[i])
                out[a] = e > s ? (e - s + steps[i] - 1) / steps[i] : 0
                rStarts.append(s); rEnds.append(max(e, s)); rAxes.append(a)
            }
            return (.slice(starts: rStarts, ends: rEnds, axes: rAxes, steps: steps), [out])

        case .gemm(_, _, let ta, let tb):
            let b = inputs[1]
            guard x.count == 2, b.count == 2 else { throw fail("A and B must be 2-D, got \(x) and \(b)") }
            let (m, k) = ta ? (x[1], x[0]) : (x[0], x[1])
            let (k2, n) = tb ? (b[1], b[0]) : (b[0], b[1])
            guard k == k2 else { throw fail("inner dimensions differ: A is \(x) (transA=\(ta)), B is \(b) (transB=\(tb))") }
            if inputs.count == 3, broadcast(inputs[2], [m, n]) != [m, n] {
                throw fail("C of shape \(inputs[2]) cannot be broadcast to [\(m), \(n)]")
            }
            return (op, [[m, n]])

        case .matMul:
            let b = inputs[1]
            guard x.count >= 2, b.count >= 2 else { throw fail("inputs must be at least 2-D, got \(x) and \(b)") }
            guard x[x.count - 1] == b[b.count - 2] else { throw fail("inner dimensions differ: \(x) × \(b)") }
            guard let batch = broadcast(Array(x.dropLast(2)), Array(b.dropLast(2))) else {
                throw fail("batch dimensions of \(x) and \(b) cannot be broadcast")
            }
            return (op, [batch + [x[x.count - 2], b[b.count - 1]]])

        case .flatten(let axis):
            let a = axis < 0 ? axis + x.count : axis
            guard a >= 0 && a <= x.count else { throw fail("axis \(axis) is out of range for rank \(x.count)") }
            return (.flatten(axis: a), [[x[..<a].reduce(1, *), x[a...].reduce(1, *)]])

        case .reshape(let target):
            var out = target.enumerated().map { $0.element == 0 && $0.offset < x.count ? x[$0.offset] : $0.element }
            let total = x.reduce(1, *)
            let unknown = out.indices.filter { out[$0] == -1 }
            guard unknown.count <= 1, out.allSatisfy({ $0 >= -1 }) else { throw fail("invalid target shape \(target)") }
            let known = out.filter { $0 != -1 }.reduce(1, *)
            if let u = unknown.first {
                guard known > 0, total % known == 0 else { throw fail("cannot reshape \(x) to \(target)") }
                out[u] = total / known
            }
            guard out.reduce(1, *) == total else { throw fail("cannot reshape \(x) (\(total) elements) to \(target)") }
            return (.reshape(shape: out), [out])

        case .transpose(var perm):
            if perm.isEmpty { perm = Array((0..<x.count).reversed()) }
            guard perm.sorted() == Array(0..<x.count) else { throw fail("perm \(perm) is not a permutation of 0..<\(x.count)") }
            return (.transpose(perm: perm), [perm.map { x[$0] }])

        case .softmax(let axis):
            return (.softmax(axis: try normalize(axis, rank: x.count)), [x])

        case .pad(let pads, _):
            guard pads.count == 2 * x.count else { throw fail("pads \(pads) need \(2 * x.count) values for rank \(x.count)") }
            return (op, [x.indices.map { x[$0] + pads[$0] + pads[$0 + x.count] }])
        }
    }

    /// NumPy-style broadcasting of two shapes, or nil when they are incompatible.
    static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a
        let pb = Array(repeating: 1, count: rank - b.count) + b
        var out: [Int] = []
        for (x, y) in zip(pa, pb) {
            if x == y || y == 1 { out.append(x) } else if x == 1 { out.append(y) } else { return nil }
        }
        return out
    }

    /// Explicit pads, or the SAME_UPPER (`[-2]`) / SAME_LOWER (`[-1]`) markers resolved for this input.
    static func resolvePads(_ pads: [Int], input: [Int], kernel: [Int], strides: [Int], dilations: [Int],
                            fail: (String) -> MetronomeError) throws -> [Int] {
        guard pads.count == 1 else {
            guard pads.count == 4 else { throw fail("pads must have 4 values, got \(pads)") }
            return pads
        }
        var begin = [0, 0], end = [0, 0]
        for i in 0..<2 {
            let out = (input[i] + strides[i] - 1) / strides[i]
            let ext = (kernel[i] - 1) * dilations[i] + 1
            let total = max((out - 1) * strides[i] + ext - input[i], 0)
            let small = total / 2
            begin[i] = pads[0] == -1 ? total - small : small
            end[i] = total - begin[i]
        }
        return begin + end
    }
}
