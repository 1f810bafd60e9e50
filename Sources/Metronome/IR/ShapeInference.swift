/// Shape helpers shared by the operators' shape rules (each rule lives with its operator
/// in `Ops/`).
enum ShapeInference {
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
        let n = kernel.count
        guard pads.count == 1 else {
            guard pads.count == 2 * n else { throw fail("pads must have \(2 * n) values, got \(pads)") }
            return pads
        }
        var begin = Array(repeating: 0, count: n), end = Array(repeating: 0, count: n)
        for i in 0..<n {
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
