#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reference kernels for broadcasting n-ary operators (Pow, PRelu, Sum/Max/Min/Mean),
/// reductions and the layer and instance normalizations. Like the rest of
/// ``ReferenceKernels`` they favour clarity: they are the oracle for the oneDNN paths.
extension ReferenceKernels {
    /// `y = f(a, b)` with NumPy broadcasting of both operands to `ys`. `y` may be `a` itself
    /// when `aShape == ys` (each element is read before it is written).
    public static func broadcast(_ a: In, _ aShape: [Int], _ b: In, _ bShape: [Int], out y: Out, _ ys: [Int],
                                 _ f: (Float, Float) -> Float) {
        let count = ys.reduce(1, *)
        guard count > 0 else { return }
        if aShape == ys && bShape == ys {
            for i in 0..<count { y[i] = f(a[i], b[i]) }
            return
        }
        let sa = broadcastStrides(aShape, to: ys), sb = broadcastStrides(bShape, to: ys)
        var index = Array(repeating: 0, count: ys.count)
        var ia = 0, ib = 0
        for i in 0..<count {
            y[i] = f(a[ia], b[ib])
            var d = ys.count - 1
            while d >= 0 {
                index[d] += 1
                ia += sa[d]; ib += sb[d]
                if index[d] < ys[d] { break }
                ia -= sa[d] * ys[d]; ib -= sb[d] * ys[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// `x` broadcast to `ys`.
    public static func broadcastCopy(_ x: In, _ xs: [Int], out y: Out, _ ys: [Int]) {
        broadcast(x, xs, x, xs, out: y, ys) { v, _ in v }
    }

    /// Reduces `x` over `axes` (sorted, non-negative) into `y`, which holds the kept
    /// dimensions in order (the same bytes with or without `keepdims`).
    public static func reduce(_ kind: ReduceKind, _ x: In, _ xs: [Int], axes: [Int], out y: Out) {
        var kept = xs
        for a in axes { kept[a] = 1 }
        let outCount = kept.reduce(1, *), inCount = xs.reduce(1, *)
        // LogSumExp subtracts each output's maximum first, so large inputs do not overflow.
        let shift = kind == .logSumExp ? accumulate(.max, x, xs, kept: kept) : nil
        let acc = accumulate(kind, x, xs, kept: kept, shift: shift)
        let n = Double(inCount / Swift.max(outCount, 1))
        for j in 0..<outCount {
            switch kind {
            case .mean: y[j] = Float(acc[j] / n)
            case .l2: y[j] = Float(acc[j].squareRoot())
            case .logSum: y[j] = Float(log(acc[j]))
            case .logSumExp:
                let m = shift![j]
                y[j] = m.isFinite ? Float(log(acc[j]) + m) : Float(m)
            default: y[j] = Float(acc[j])
            }
        }
    }

    /// Per output element (the input's shape with reduced axes of extent 1): the accumulated
    /// values of its inputs, minus `shift` (per output) inside LogSumExp's exponential.
    static func accumulate(_ kind: ReduceKind, _ x: In, _ xs: [Int], kept: [Int], shift: [Double]? = nil) -> [Double] {
        let rank = xs.count
        let outCount = kept.reduce(1, *), inCount = xs.reduce(1, *)
        // Strides of the output in the input's index space: 0 along reduced axes.
        var outStrides = Array(repeating: 0, count: rank)
        var s = 1
        for d in stride(from: rank - 1, through: 0, by: -1) {
            outStrides[d] = kept[d] == 1 ? 0 : s
            s *= kept[d]
        }
        var acc = [Double](repeating: kind.initial, count: outCount)
        var index = Array(repeating: 0, count: rank)
        var o = 0
        for i in 0..<inCount {
            let v = Double(x[i])
            switch kind {
            case .sum, .mean, .logSum: acc[o] += v
            case .l2, .sumSquare: acc[o] += v * v
            case .l1: acc[o] += abs(v)
            case .prod: acc[o] *= v
            case .logSumExp: acc[o] += exp(v - (shift?[o] ?? 0))
            case .max: acc[o] = v > acc[o] || v.isNaN ? v : acc[o]
            case .min: acc[o] = v < acc[o] || v.isNaN ? v : acc[o]
            }
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                o += outStrides[d]
                if index[d] < xs[d] { break }
                o -= outStrides[d] * xs[d]
                index[d] = 0
                d -= 1
            }
        }
        return acc
    }

    /// Normalizes each row of `inner` elements (the axes from the normalization axis on) to
    /// zero mean and unit variance, then scales and shifts by `scale` and `bias`
    /// broadcast to the row's shape. `mean` and `invStdDev`, when given, receive each row's
    /// statistics (ONNX's optional outputs).
    public static func layerNorm(_ x: In, _ xs: [Int], axis: Int, epsilon: Float,
                                 scale: (In, [Int]), bias: (In, [Int])?, out y: Out,
                                 mean meanOut: Out? = nil, invStdDev invOut: Out? = nil) {
        let rowShape = Array(xs[axis...])
        let inner = rowShape.reduce(1, *), outer = xs[..<axis].reduce(1, *)
        guard inner > 0 else { return }
        // Scale and bias expanded to one row once.
        var gamma = [Float](repeating: 0, count: inner), beta = [Float](repeating: 0, count: inner)
        gamma.withUnsafeMutableBufferPointer { g in
            if let d = g.baseAddress { broadcastCopy(scale.0, scale.1, out: d, rowShape) }
        }
        if let bias {
            beta.withUnsafeMutableBufferPointer { b in
                if let d = b.baseAddress { broadcastCopy(bias.0, bias.1, out: d, rowShape) }
            }
        }
        for r in 0..<outer {
            let src = x + r * inner, dst = y + r * inner
            var mean = 0.0
            for i in 0..<inner { mean += Double(src[i]) }
            mean /= Double(inner)
            var variance = 0.0
            for i in 0..<inner { let d = Double(src[i]) - mean; variance += d * d }
            variance /= Double(inner)
            let inv = 1 / (variance + Double(epsilon)).squareRoot()
            meanOut?[r] = Float(mean)
            invOut?[r] = Float(inv)
            for i in 0..<inner { dst[i] = Float((Double(src[i]) - mean) * inv) * gamma[i] + beta[i] }
        }
    }

    /// Normalizes each `(n, c)` plane over its spatial elements, then scales and shifts by
    /// the channel's `scale` and `bias`.
    public static func instanceNorm(_ x: In, _ xs: [Int], scale: In, bias: In, epsilon: Float, out y: Out) {
        let n = xs[0], c = xs[1], inner = xs.dropFirst(2).reduce(1, *)
        guard inner > 0 else { return }
        for b in 0..<n {
            for ch in 0..<c {
                let base = (b * c + ch) * inner
                var mean = 0.0
                for i in 0..<inner { mean += Double(x[base + i]) }
                mean /= Double(inner)
                var variance = 0.0
                for i in 0..<inner { let d = Double(x[base + i]) - mean; variance += d * d }
                variance /= Double(inner)
                let k = Double(scale[ch]) / (variance + Double(epsilon)).squareRoot()
                for i in 0..<inner { y[base + i] = Float((Double(x[base + i]) - mean) * k + Double(bias[ch])) }
            }
        }
    }
}
