#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Plain Swift kernels for every operator, written for clarity over speed. They are the
/// oracle the fast path is tested against, and the compiler's fallback for operators and
/// layouts oneDNN does not cover. All work on dense row-major buffers.
public enum ReferenceKernels {
    public typealias In = UnsafePointer<Float>
    public typealias Out = UnsafeMutablePointer<Float>

    /// Applies fused post-operations in place: eltwise functions and residual adds.
    static func applyPostOps(_ postOps: [PostOp], to out: Out, count: Int, residual: (ValueID) -> In) {
        for post in postOps {
            switch post {
            case .eltwise(let f): for i in 0..<count { out[i] = f.apply(out[i]) }
            case .add(let v):
                let r = residual(v)
                for i in 0..<count { out[i] += r[i] }
            }
        }
    }

    public static func conv(_ x: In, _ xs: [Int], weight w: In, _ ws: [Int], bias: In?,
                            _ a: ConvAttributes, out y: Out, _ ys: [Int]) {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (m, oh, ow) = (ys[1], ys[2], ys[3])
        let (kh, kw) = (ws[2], ws[3])
        let cPerG = c / a.groups, mPerG = m / a.groups
        let (sh, sw) = (a.strides[0], a.strides[1])
        let (dh, dw) = (a.dilations[0], a.dilations[1])
        let (pt, pl) = (a.pads[0], a.pads[1])
        for b in 0..<n {
            for oc in 0..<m {
                let g = oc / mPerG
                let dst = y + ((b * m + oc) * oh * ow)
                let initial = bias?[oc] ?? 0
                for i in 0..<(oh * ow) { dst[i] = initial }
                for icg in 0..<cPerG {
                    let ic = g * cPerG + icg
                    let src = x + ((b * c + ic) * h * wd)
                    let wk = w + ((oc * cPerG + icg) * kh * kw)
                    for ky in 0..<kh {
                        for kx in 0..<kw {
                            let wv = wk[ky * kw + kx]
                            // The output columns whose input column lies inside the image.
                            let offX = kx * dw - pl
                            let oxLo = max(0, (-offX + sw - 1) / sw)
                            let oxHi = min(ow, (wd - offX + sw - 1) / sw)
                            if oxLo >= oxHi { continue }
                            for oy in 0..<oh {
                                let iy = oy * sh + ky * dh - pt
                                if iy < 0 || iy >= h { continue }
                                let row = src + iy * wd + offX
                                let drow = dst + oy * ow
                                for ox in oxLo..<oxHi { drow[ox] += wv * row[ox * sw] }
                            }
                        }
                    }
                }
            }
        }
    }

    public static func batchNorm(_ x: In, _ xs: [Int], scale: In, bias: In, mean: In, variance: In,
                                 epsilon: Float, out y: Out) {
        let n = xs[0], c = xs[1], inner = xs.dropFirst(2).reduce(1, *)
        for b in 0..<n {
            for ch in 0..<c {
                let k = scale[ch] / (variance[ch] + epsilon).squareRoot()
                let s = bias[ch] - mean[ch] * k
                let base = (b * c + ch) * inner
                for i in 0..<inner { y[base + i] = x[base + i] * k + s }
            }
        }
    }

    public static func eltwise(_ f: Eltwise, _ x: In, count: Int, out y: Out) {
        for i in 0..<count { y[i] = f.apply(x[i]) }
    }

    /// Max and average pooling. Average pooling divides by the window area including
    /// padding, or by the number of input elements it covers, as `countIncludePad` says;
    /// with ceil mode, window parts beyond the end padding never count (PyTorch/ONNX rule).
    public static func pool(_ x: In, _ xs: [Int], _ a: PoolAttributes, max isMax: Bool,
                            countIncludePad: Bool, out y: Out, _ ys: [Int]) {
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3])
        let (oh, ow) = (ys[2], ys[3])
        for plane in 0..<(n * c) {
            let src = x + plane * h * w
            let dst = y + plane * oh * ow
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let y0 = oy * a.strides[0] - a.pads[0], x0 = ox * a.strides[1] - a.pads[1]
                    var acc: Float = isMax ? -.infinity : 0
                    var inside = 0
                    for ky in 0..<a.kernel[0] {
                        let iy = y0 + ky * a.dilations[0]
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<a.kernel[1] {
                            let ix = x0 + kx * a.dilations[1]
                            if ix < 0 || ix >= w { continue }
                            let v = src[iy * w + ix]
                            if isMax { acc = Swift.max(acc, v) } else { acc += v }
                            inside += 1
                        }
                    }
                    if !isMax {
                        var divisor = inside
                        if countIncludePad {
                            let yEnd = Swift.min(y0 + a.kernel[0], h + a.pads[2])
                            let xEnd = Swift.min(x0 + a.kernel[1], w + a.pads[3])
                            divisor = (yEnd - y0) * (xEnd - x0)
                        }
                        acc /= Float(Swift.max(divisor, 1))
                    }
                    dst[oy * ow + ox] = acc
                }
            }
        }
    }

    public static func globalAveragePool(_ x: In, _ xs: [Int], out y: Out) {
        let planes = xs[0] * xs[1], size = xs[2...].reduce(1, *)
        for p in 0..<planes {
            var s: Float = 0
            for i in 0..<size { s += x[p * size + i] }
            y[p] = s / Float(size)
        }
    }

    /// Row-major strides of `shape`.
    static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = Array(repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        return strides
    }

    /// Row-major strides of `shape`, with 0 for broadcast (size-1) dimensions of a shape
    /// right-aligned against `outShape`.
    static func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
        let padded = Array(repeating: 1, count: outShape.count - shape.count) + shape
        var strides = Array(repeating: 0, count: outShape.count)
        var s = 1
        for i in stride(from: outShape.count - 1, through: 0, by: -1) {
            strides[i] = padded[i] == 1 ? 0 : s
            s *= padded[i]
        }
        return strides
    }

    public static func binary(_ kind: BinaryKind, _ a: In, _ aShape: [Int], _ b: In, _ bShape: [Int],
                              out y: Out, _ ys: [Int]) {
        let count = ys.reduce(1, *)
        if aShape == ys && bShape == ys {
            for i in 0..<count { y[i] = kind.apply(a[i], b[i]) }
            return
        }
        let sa = broadcastStrides(aShape, to: ys), sb = broadcastStrides(bShape, to: ys)
        var index = Array(repeating: 0, count: ys.count)
        var ia = 0, ib = 0
        for i in 0..<count {
            y[i] = kind.apply(a[ia], b[ib])
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

    public static func concat(_ inputs: [(In, [Int])], axis: Int, out y: Out, _ ys: [Int]) {
        let outer = ys[..<axis].reduce(1, *), inner = ys[(axis + 1)...].reduce(1, *)
        var offset = 0
        for (x, xs) in inputs {
            let chunk = xs[axis] * inner
            for o in 0..<outer {
                (y + o * ys[axis] * inner + offset).update(from: x + o * chunk, count: chunk)
            }
            offset += chunk
        }
    }

    public static func split(_ x: In, _ xs: [Int], axis: Int, outputs: [(Out, [Int])]) {
        let outer = xs[..<axis].reduce(1, *), inner = xs[(axis + 1)...].reduce(1, *)
        var offset = 0
        for (y, ys) in outputs {
            let chunk = ys[axis] * inner
            for o in 0..<outer {
                (y + o * chunk).update(from: x + o * xs[axis] * inner + offset, count: chunk)
            }
            offset += chunk
        }
    }

    public static func slice(_ x: In, _ xs: [Int], starts: [Int], axes: [Int], steps: [Int],
                             out y: Out, _ ys: [Int]) {
        var start = Array(repeating: 0, count: xs.count), step = Array(repeating: 1, count: xs.count)
        for (i, a) in axes.enumerated() { start[a] = starts[i]; step[a] = steps[i] }
        strided(x, xs, start: start, step: step, perm: Array(0..<xs.count), out: y, ys)
    }

    public static func transpose(_ x: In, _ xs: [Int], perm: [Int], out y: Out, _ ys: [Int]) {
        strided(x, xs, start: Array(repeating: 0, count: xs.count), step: Array(repeating: 1, count: xs.count),
                perm: perm, out: y, ys)
    }

    /// Gathers `y[i] = x[start + i·step]` with output axis `d` walking input axis `perm[d]`.
    static func strided(_ x: In, _ xs: [Int], start: [Int], step: [Int], perm: [Int], out y: Out, _ ys: [Int]) {
        let count = ys.reduce(1, *)
        guard count > 0 else { return }
        let inStrides = rowMajorStrides(xs)
        let walk = perm.map { inStrides[$0] * step[$0] }
        var base = 0
        for d in 0..<xs.count { base += start[d] * inStrides[d] }
        var index = Array(repeating: 0, count: ys.count)
        var src = base
        for i in 0..<count {
            y[i] = x[src]
            var d = ys.count - 1
            while d >= 0 {
                index[d] += 1
                src += walk[d]
                if index[d] < ys[d] { break }
                src -= walk[d] * ys[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    public static func pad(_ x: In, _ xs: [Int], pads: [Int], value: Float, out y: Out, _ ys: [Int]) {
        let count = ys.reduce(1, *)
        for i in 0..<count { y[i] = value }
        let rank = xs.count
        let inCount = xs.reduce(1, *)
        guard inCount > 0 else { return }
        let outStrides = rowMajorStrides(ys)
        var index = Array(repeating: 0, count: rank)
        for i in 0..<inCount {
            var o = 0
            for d in 0..<rank { o += (index[d] + pads[d]) * outStrides[d] }
            y[o] = x[i]
            var d = rank - 1
            while d >= 0 { index[d] += 1; if index[d] < xs[d] { break }; index[d] = 0; d -= 1 }
        }
    }

    /// `y = alpha·op(A)·op(B) + beta·C` with C broadcast to `[M, N]`.
    public static func gemm(_ a: In, _ aShape: [Int], _ b: In, _ bShape: [Int], c: (In, [Int])?,
                            alpha: Float, beta: Float, transA: Bool, transB: Bool, out y: Out, _ ys: [Int]) {
        let (m, n) = (ys[0], ys[1])
        let k = transA ? aShape[0] : aShape[1]
        let cStrides = c.map { broadcastStrides($0.1, to: ys) }
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k {
                    let av = transA ? a[p * m + i] : a[i * k + p]
                    let bv = transB ? b[j * k + p] : b[p * n + j]
                    s += av * bv
                }
                var v = alpha * s
                if let (cp, _) = c, let cs = cStrides { v += beta * cp[i * cs[0] + j * cs[1]] }
                y[i * n + j] = v
            }
        }
    }

    public static func matMul(_ a: In, _ aShape: [Int], _ b: In, _ bShape: [Int], out y: Out, _ ys: [Int]) {
        let m = aShape[aShape.count - 2], k = aShape[aShape.count - 1], n = bShape[bShape.count - 1]
        let batchShape = Array(ys.dropLast(2))
        let batches = batchShape.reduce(1, *)
        let sa = broadcastStrides(Array(aShape.dropLast(2)), to: batchShape)
        let sb = broadcastStrides(Array(bShape.dropLast(2)), to: batchShape)
        for bi in 0..<batches {
            var rem = bi, oa = 0, ob = 0
            for d in stride(from: batchShape.count - 1, through: 0, by: -1) {
                let idx = rem % batchShape[d]
                rem /= batchShape[d]
                oa += idx * sa[d]; ob += idx * sb[d]
            }
            let ap = a + oa * m * k, bp = b + ob * k * n, yp = y + bi * m * n
            for i in 0..<m {
                for j in 0..<n { yp[i * n + j] = 0 }
                for p in 0..<k {
                    let av = ap[i * k + p]
                    for j in 0..<n { yp[i * n + j] += av * bp[p * n + j] }
                }
            }
        }
    }

    public static func softmax(_ x: In, _ xs: [Int], axis: Int, out y: Out) {
        let outer = xs[..<axis].reduce(1, *), dim = xs[axis], inner = xs[(axis + 1)...].reduce(1, *)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * dim * inner + i
                var mx = -Float.infinity
                for d in 0..<dim { mx = Swift.max(mx, x[base + d * inner]) }
                var sum: Float = 0
                for d in 0..<dim {
                    let e = expf(x[base + d * inner] - mx)
                    y[base + d * inner] = e
                    sum += e
                }
                for d in 0..<dim { y[base + d * inner] /= sum }
            }
        }
    }
}
