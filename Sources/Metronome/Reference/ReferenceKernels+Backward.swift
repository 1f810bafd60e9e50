#if canImport(Glibc)
import Glibc
#endif

/// Backward passes on dense row-major buffers, written as plainly as the forward kernels:
/// the oracle the gradient checks verify against finite differences. Every kernel *adds*
/// into the gradients it is given (a value read by several steps sums their gradients).
extension ReferenceKernels {
    /// Σ a[i] over `n` elements, eight lanes at a time (the order differs from a plain loop
    /// by rounding only).
    @inline(__always)
    static func sum(_ a: In, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc.sum()
        while i < n { s += a[i]; i += 1 }
        return s
    }

    /// Σ (a[i] − c)² and Σ g[i]·(a[i] − c), eight lanes at a time.
    @inline(__always)
    static func centredSums(_ a: In, _ g: In?, _ c: Float, _ n: Int) -> (squares: Float, products: Float) {
        var sq = SIMD8<Float>(repeating: 0), pr = SIMD8<Float>(repeating: 0)
        let cv = SIMD8<Float>(repeating: c)
        var i = 0
        while i + 8 <= n {
            let d = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) - cv
            if let g { pr += UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self) * d } else { sq += d * d }
            i += 8
        }
        var s = sq.sum(), p = pr.sum()
        while i < n {
            let d = a[i] - c
            if let g { p += g[i] * d } else { s += d * d }
            i += 1
        }
        return (s, p)
    }

    public static func convBackward(_ x: In, _ xs: [Int], weight w: In, _ ws: [Int], _ a: ConvAttributes,
                                    dy: In, _ ys: [Int], dx: Out?, dw: Out?, dbias: Out?) {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (m, oh, ow) = (ys[1], ys[2], ys[3])
        let (kh, kw) = (ws[2], ws[3])
        let cPerG = c / a.groups, mPerG = m / a.groups
        for b in 0..<n {
            for oc in 0..<m {
                let g = oc / mPerG
                let grad = dy + (b * m + oc) * oh * ow
                if let dbias { for i in 0..<(oh * ow) { dbias[oc] += grad[i] } }
                for icg in 0..<cPerG {
                    let ic = g * cPerG + icg
                    let src = x + (b * c + ic) * h * wd
                    for ky in 0..<kh {
                        for kx in 0..<kw {
                            let widx = ((oc * cPerG + icg) * kh + ky) * kw + kx
                            var acc: Float = 0
                            for oy in 0..<oh {
                                let iy = oy * a.strides[0] + ky * a.dilations[0] - a.pads[0]
                                if iy < 0 || iy >= h { continue }
                                for ox in 0..<ow {
                                    let ix = ox * a.strides[1] + kx * a.dilations[1] - a.pads[1]
                                    if ix < 0 || ix >= wd { continue }
                                    let gv = grad[oy * ow + ox]
                                    acc += gv * src[iy * wd + ix]
                                    dx?[(b * c + ic) * h * wd + iy * wd + ix] += gv * w[widx]
                                }
                            }
                            dw?[widx] += acc
                        }
                    }
                }
            }
        }
    }

    /// ONNX Gemm `Y = alpha·op(A)·op(B) + beta·C` (C broadcast to Y).
    public static func gemmBackward(_ a: In, _ aShape: [Int], _ b: In, _ bShape: [Int], cShape: [Int]?,
                                    alpha: Float, beta: Float, transA: Bool, transB: Bool, dy: In, _ ys: [Int],
                                    da: Out?, db: Out?, dc: Out?) {
        let (m, n) = (ys[0], ys[1])
        let k = transA ? aShape[0] : aShape[1]
        for i in 0..<m {
            for j in 0..<n {
                let g = alpha * dy[i * n + j]
                for p in 0..<k {
                    let ai = transA ? p * m + i : i * k + p
                    let bi = transB ? j * k + p : p * n + j
                    da?[ai] += g * b[bi]
                    db?[bi] += g * a[ai]
                }
            }
        }
        if let dc, let cShape {
            let cs = broadcastStrides(cShape, to: ys)
            for i in 0..<m { for j in 0..<n { dc[i * cs[0] + j * cs[1]] += beta * dy[i * n + j] } }
        }
    }

    /// 2-D MatMul `Y = A·B`.
    public static func matMulBackward(_ a: In, _ aShape: [Int], _ b: In, _ bShape: [Int], dy: In, da: Out?, db: Out?) {
        gemmBackward(a, aShape, b, bShape, cShape: nil, alpha: 1, beta: 0, transA: false, transB: false,
                     dy: dy, [aShape[0], bShape[1]], da: da, db: db, dc: nil)
    }

    /// Max pooling sends each output's gradient to the first input position holding the
    /// window's maximum (PyTorch's choice); average pooling spreads it over the divisor.
    public static func poolBackward(_ x: In, _ xs: [Int], _ a: PoolAttributes, max isMax: Bool, countIncludePad: Bool,
                                    dy: In, _ ys: [Int], dx: Out) {
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3])
        let (oh, ow) = (ys[2], ys[3])
        for plane in 0..<(n * c) {
            let src = x + plane * h * w, dst = dx + plane * h * w
            let grad = dy + plane * oh * ow
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let y0 = oy * a.strides[0] - a.pads[0], x0 = ox * a.strides[1] - a.pads[1]
                    var best = -Float.infinity, at = -1, inside = 0
                    for ky in 0..<a.kernel[0] {
                        let iy = y0 + ky * a.dilations[0]
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<a.kernel[1] {
                            let ix = x0 + kx * a.dilations[1]
                            if ix < 0 || ix >= w { continue }
                            inside += 1
                            if isMax && src[iy * w + ix] > best { best = src[iy * w + ix]; at = iy * w + ix }
                        }
                    }
                    let g = grad[oy * ow + ox]
                    if isMax {
                        if at >= 0 { dst[at] += g }
                        continue
                    }
                    var divisor = inside
                    if countIncludePad {
                        let yEnd = Swift.min(y0 + a.kernel[0], h + a.pads[2])
                        let xEnd = Swift.min(x0 + a.kernel[1], w + a.pads[3])
                        divisor = (yEnd - y0) * (xEnd - x0)
                    }
                    let share = g / Float(Swift.max(divisor, 1))
                    for ky in 0..<a.kernel[0] {
                        let iy = y0 + ky * a.dilations[0]
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<a.kernel[1] {
                            let ix = x0 + kx * a.dilations[1]
                            if ix >= 0 && ix < w { dst[iy * w + ix] += share }
                        }
                    }
                }
            }
        }
    }

    public static func globalAveragePoolBackward(_ xs: [Int], dy: In, dx: Out) {
        let planes = xs[0] * xs[1], size = xs[2...].reduce(1, *)
        for p in 0..<planes {
            let g = dy[p] / Float(size)
            for i in 0..<size { dx[p * size + i] += g }
        }
    }

    /// For each position of `ys` (row-major), the element of a tensor of shape `shape`
    /// broadcast to `ys` that sits there.
    static func broadcastOffsets(_ shape: [Int], to ys: [Int]) -> [Int] {
        let count = ys.reduce(1, *)
        if shape == ys { return Array(0..<count) }
        let s = broadcastStrides(shape, to: ys)
        var offsets = [Int](repeating: 0, count: count)
        var index = Array(repeating: 0, count: ys.count)
        var o = 0
        for i in 0..<count {
            offsets[i] = o
            var d = ys.count - 1
            while d >= 0 {
                index[d] += 1
                o += s[d]
                if index[d] < ys[d] { break }
                o -= s[d] * ys[d]
                index[d] = 0
                d -= 1
            }
        }
        return offsets
    }

    /// Adds `g` (of shape `ys`) into `d` (of shape `shape`, broadcast to `ys`), summing over
    /// the broadcast dimensions.
    static func reduceBroadcast(_ g: (Int) -> Float, _ ys: [Int], into d: Out, _ shape: [Int]) {
        for (i, o) in broadcastOffsets(shape, to: ys).enumerated() { d[o] += g(i) }
    }

    /// The value of a broadcast input at each output position.
    static func broadcastValues(_ x: In, _ shape: [Int], to ys: [Int]) -> [Float] {
        broadcastOffsets(shape, to: ys).map { x[$0] }
    }

    public static func binaryBackward(_ kind: BinaryKind, _ a: In, _ aShape: [Int], _ b: In, _ bShape: [Int],
                                      dy: In, _ ys: [Int], da: Out?, db: Out?) {
        switch kind {
        case .add:
            if let da { reduceBroadcast({ dy[$0] }, ys, into: da, aShape) }
            if let db { reduceBroadcast({ dy[$0] }, ys, into: db, bShape) }
        case .sub:
            if let da { reduceBroadcast({ dy[$0] }, ys, into: da, aShape) }
            if let db { reduceBroadcast({ -dy[$0] }, ys, into: db, bShape) }
        case .mul, .div:
            let av = broadcastValues(a, aShape, to: ys), bv = broadcastValues(b, bShape, to: ys)
            if kind == .mul {
                if let da { reduceBroadcast({ dy[$0] * bv[$0] }, ys, into: da, aShape) }
                if let db { reduceBroadcast({ dy[$0] * av[$0] }, ys, into: db, bShape) }
            } else {
                if let da { reduceBroadcast({ dy[$0] / bv[$0] }, ys, into: da, aShape) }
                if let db { reduceBroadcast({ -dy[$0] * av[$0] / (bv[$0] * bv[$0]) }, ys, into: db, bShape) }
            }
        }
    }

    public static func concatBackward(_ shapes: [[Int]], axis: Int, dy: In, _ ys: [Int], dx: [Out?]) {
        let outer = ys[..<axis].reduce(1, *), inner = ys[(axis + 1)...].reduce(1, *)
        var offset = 0
        for (xs, d) in zip(shapes, dx) {
            let chunk = xs[axis] * inner
            if let d {
                for o in 0..<outer {
                    let src = dy + o * ys[axis] * inner + offset, dst = d + o * chunk
                    for i in 0..<chunk { dst[i] += src[i] }
                }
            }
            offset += chunk
        }
    }

    public static func splitBackward(_ xs: [Int], axis: Int, dy: [(In, [Int])], dx: Out) {
        let outer = xs[..<axis].reduce(1, *), inner = xs[(axis + 1)...].reduce(1, *)
        var offset = 0
        for (g, ys) in dy {
            let chunk = ys[axis] * inner
            for o in 0..<outer {
                let src = g + o * chunk, dst = dx + o * xs[axis] * inner + offset
                for i in 0..<chunk { dst[i] += src[i] }
            }
            offset += chunk
        }
    }

    public static func softmaxBackward(_ y: In, _ ys: [Int], axis: Int, dy: In, dx: Out) {
        let outer = ys[..<axis].reduce(1, *), dim = ys[axis], inner = ys[(axis + 1)...].reduce(1, *)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * dim * inner + i
                var dot: Float = 0
                for d in 0..<dim { dot += y[base + d * inner] * dy[base + d * inner] }
                for d in 0..<dim { dx[base + d * inner] += y[base + d * inner] * (dy[base + d * inner] - dot) }
            }
        }
    }

    /// Batch norm in training mode: normalizes with the batch's mean and biased variance per
    /// channel (channels split over the OpenMP team); returns them (for the backward pass and
    /// the running statistics).
    public static func batchNormTraining(_ x: In, _ xs: [Int], scale: In, bias: In, epsilon: Float, out y: Out)
        -> (mean: [Float], variance: [Float]) {
        let n = xs[0], c = xs[1], inner = xs.dropFirst(2).reduce(1, *)
        let count = Float(n * inner)
        let stats = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
        defer { stats.deallocate() }
        ParallelFor.run(c) { ch, _ in
            var s: Double = 0
            for b in 0..<n { s += Double(sum(x + (b * c + ch) * inner, inner)) }
            let mu = Float(s / Double(count))
            var v: Double = 0
            for b in 0..<n { v += Double(centredSums(x + (b * c + ch) * inner, nil, mu, inner).squares) }
            let sigma2 = Float(v / Double(count))
            stats[ch] = mu
            stats[c + ch] = sigma2
            let k = scale[ch] / (sigma2 + epsilon).squareRoot(), shift = bias[ch] - mu * k
            let kv = SIMD8<Float>(repeating: k), sv = SIMD8<Float>(repeating: shift)
            for b in 0..<n {
                let base = (b * c + ch) * inner
                var i = 0
                while i + 8 <= inner {
                    let v = UnsafeRawPointer(x + base + i).loadUnaligned(as: SIMD8<Float>.self) * kv + sv
                    UnsafeMutableRawPointer(y + base + i).storeBytes(of: v, as: SIMD8<Float>.self)
                    i += 8
                }
                while i < inner { y[base + i] = x[base + i] * k + shift; i += 1 }
            }
        }
        return (Array(UnsafeBufferPointer(start: stats, count: c)), Array(UnsafeBufferPointer(start: stats + c, count: c)))
    }

    /// The backward pass of ``batchNormTraining(_:_:scale:bias:epsilon:out:)`` (channels split
    /// over the OpenMP team).
    public static func batchNormTrainingBackward(_ x: In, _ xs: [Int], scale: In, mean: [Float], variance: [Float],
                                                 epsilon: Float, dy: In, dx: Out?, dscale: Out?, dbias: Out?) {
        let n = xs[0], c = xs[1], inner = xs.dropFirst(2).reduce(1, *)
        let count = Float(n * inner)
        mean.withUnsafeBufferPointer { mean in
            variance.withUnsafeBufferPointer { variance in
                ParallelFor.run(c) { ch, _ in
                    let inv = 1 / (variance[ch] + epsilon).squareRoot(), mu = mean[ch]
                    var sumG: Float = 0, sumGX: Float = 0
                    for b in 0..<n {
                        let base = (b * c + ch) * inner
                        sumG += sum(dy + base, inner)
                        sumGX += centredSums(x + base, dy + base, mu, inner).products
                    }
                    sumGX *= inv
                    dbias?[ch] += sumG
                    dscale?[ch] += sumGX
                    guard let dx else { return }
                    // dx += k·(count·dy − sumG − x̂·sumGX) = a·dy + b·x + c0, eight lanes at a time
                    // (the compiler cannot prove dx, dy and x apart, so it would not vectorize).
                    let k = scale[ch] * inv / count
                    let a = k * count, bx = -k * inv * sumGX, c0 = k * (mu * inv * sumGX - sumG)
                    let av = SIMD8<Float>(repeating: a), bv = SIMD8<Float>(repeating: bx), cv = SIMD8<Float>(repeating: c0)
                    for b in 0..<n {
                        let base = (b * c + ch) * inner
                        var i = 0
                        while i + 8 <= inner {
                            let g = UnsafeRawPointer(dy + base + i).loadUnaligned(as: SIMD8<Float>.self)
                            let v = UnsafeRawPointer(x + base + i).loadUnaligned(as: SIMD8<Float>.self)
                            var d = UnsafeRawPointer(dx + base + i).loadUnaligned(as: SIMD8<Float>.self)
                            d += av * g + bv * v + cv
                            UnsafeMutableRawPointer(dx + base + i).storeBytes(of: d, as: SIMD8<Float>.self)
                            i += 8
                        }
                        while i < inner {
                            dx[base + i] += a * dy[base + i] + bx * x[base + i] + c0
                            i += 1
                        }
                    }
                }
            }
        }
    }

    /// Batch norm in inference mode (fixed statistics): a per-channel affine map.
    public static func batchNormInferenceBackward(_ x: In, _ xs: [Int], scale: In, mean: In, variance: In, epsilon: Float,
                                                  dy: In, dx: Out?, dscale: Out?, dbias: Out?) {
        let n = xs[0], c = xs[1], inner = xs.dropFirst(2).reduce(1, *)
        for ch in 0..<c {
            let inv = 1 / (variance[ch] + epsilon).squareRoot()
            for b in 0..<n {
                let base = (b * c + ch) * inner
                for i in 0..<inner {
                    let g = dy[base + i]
                    dbias?[ch] += g
                    dscale?[ch] += g * (x[base + i] - mean[ch]) * inv
                    dx?[base + i] += g * scale[ch] * inv
                }
            }
        }
    }
}
