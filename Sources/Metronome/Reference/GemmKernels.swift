import CDNNL

/// Training's fast kernels: convolution as im2col + matrix product, and matrix products, all
/// through oneDNN's `dnnl_sgemm` (JIT-compiled, multi-threaded with the OpenMP team) on the
/// plain row-major layouts training keeps.
public enum GemmKernels {
    /// `C = alpha·op(A)·op(B) + beta·C`, row-major; `op` transposes when `transA`/`transB`.
    public static func sgemm(_ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) throws {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            return
        }
        let status = dnnl_sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                                a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        try DNNL.check(status, "sgemm \(m)x\(n)x\(k)")
    }

    /// The geometry of one 2-D convolution.
    struct ConvShape {
        var n, c, h, w, m, oh, ow, kh, kw: Int
        var a: ConvAttributes
        var cPerG: Int { c / a.groups }
        var mPerG: Int { m / a.groups }
        /// Rows of the column matrix (one group): input channels × kernel positions.
        var k: Int { cPerG * kh * kw }
        var columns: Int { oh * ow }
        /// Whether the column matrix is the input itself (1×1, stride 1, no padding).
        var isPointwise: Bool {
            kh == 1 && kw == 1 && a.strides == [1, 1] && a.pads.allSatisfy { $0 == 0 }
        }

        init(_ xs: [Int], _ ws: [Int], _ ys: [Int], _ a: ConvAttributes) {
            (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3])
            (m, oh, ow) = (ys[1], ys[2], ys[3])
            (kh, kw) = (ws[2], ws[3])
            self.a = a
        }
    }

    /// The output columns whose input column `ox·sw + kx·dw − pl` lies inside the image.
    @inline(__always)
    static func validColumns(_ s: ConvShape, kx: Int) -> (lo: Int, hi: Int, offset: Int) {
        let sw = s.a.strides[1], offset = kx * s.a.dilations[1] - s.a.pads[1]
        let lo = min(s.ow, max(0, (-offset + sw - 1) / sw))
        let hi = max(lo, min(s.ow, (s.w - offset + sw - 1) / sw))
        return (lo, hi, offset)
    }

    /// Unfolds input channels `c0..<c0+cPerG` of image `x` into `col` (`k` × `oh·ow`): each
    /// row is a kernel position, each line of it a strided copy with zeros where the window
    /// leaves the image (the bounds are worked out once per line, not per element).
    static func im2col(_ x: UnsafePointer<Float>, _ s: ConvShape, channel c0: Int, into col: UnsafeMutablePointer<Float>) {
        let (sh, sw, dh, pt) = (s.a.strides[0], s.a.strides[1], s.a.dilations[0], s.a.pads[0])
        var row = 0
        for ci in 0..<s.cPerG {
            let src = x + (c0 + ci) * s.h * s.w
            for ky in 0..<s.kh {
                for kx in 0..<s.kw {
                    let dst = col + row * s.columns
                    let (lo, hi, offset) = validColumns(s, kx: kx)
                    for oy in 0..<s.oh {
                        let iy = oy * sh + ky * dh - pt
                        let line = dst + oy * s.ow
                        if iy < 0 || iy >= s.h || lo >= hi {
                            zero(line, s.ow)
                            continue
                        }
                        if lo > 0 { zero(line, lo) }
                        if hi < s.ow { zero(line + hi, s.ow - hi) }
                        let srow = src + iy * s.w + offset
                        if sw == 1 {
                            copy(srow + lo, to: line + lo, hi - lo)
                        } else {
                            for ox in lo..<hi { line[ox] = srow[ox * sw] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// Rows here are short (an output row of a few dozen floats): inline eight-lane loops
    /// instead of a memmove or memset call per row.
    @inline(__always)
    static func copy(_ from: UnsafePointer<Float>, to: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            UnsafeMutableRawPointer(to + i).storeBytes(of: UnsafeRawPointer(from + i).loadUnaligned(as: SIMD8<Float>.self),
                                                       as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { to[i] = from[i]; i += 1 }
    }

    /// `to[i] += from[i]` (the compiler cannot prove the rows apart, so it would not vectorize).
    @inline(__always)
    static func add(_ from: UnsafePointer<Float>, into to: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(to + i).loadUnaligned(as: SIMD8<Float>.self) + UnsafeRawPointer(from + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(to + i).storeBytes(of: v, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { to[i] += from[i]; i += 1 }
    }

    @inline(__always)
    static func zero(_ to: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            UnsafeMutableRawPointer(to + i).storeBytes(of: SIMD8<Float>(repeating: 0), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { to[i] = 0; i += 1 }
    }

    /// Adds `col` back onto input channels `c0..<c0+cPerG` of gradient image `dx` (the adjoint of im2col).
    static func col2imAdd(_ col: UnsafePointer<Float>, _ s: ConvShape, channel c0: Int, into dx: UnsafeMutablePointer<Float>) {
        let (sh, sw, dh, pt) = (s.a.strides[0], s.a.strides[1], s.a.dilations[0], s.a.pads[0])
        var row = 0
        for ci in 0..<s.cPerG {
            let dst = dx + (c0 + ci) * s.h * s.w
            for ky in 0..<s.kh {
                for kx in 0..<s.kw {
                    let src = col + row * s.columns
                    let (lo, hi, offset) = validColumns(s, kx: kx)
                    row += 1
                    if lo >= hi { continue }
                    for oy in 0..<s.oh {
                        let iy = oy * sh + ky * dh - pt
                        if iy < 0 || iy >= s.h { continue }
                        let drow = dst + iy * s.w + offset
                        let line = src + oy * s.ow
                        if sw == 1 {
                            add(line + lo, into: drow + lo, hi - lo)
                        } else {
                            for ox in lo..<hi { drow[ox * sw] += line[ox] }
                        }
                    }
                }
            }
        }
    }

    /// Group `g` of an image as the column matrix (`k` × `oh·ow`): the image's own channels for
    /// a pointwise convolution, otherwise unfolded into `scratch`.
    static func columns(_ image: UnsafePointer<Float>, _ s: ConvShape, group g: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if s.isPointwise { return image + g * s.cPerG * s.h * s.w }
        im2col(image, s, channel: g * s.cPerG, into: scratch)
        return UnsafePointer(scratch)
    }

    /// Convolution forward: `y = conv(x, w) + bias`, images split over the OpenMP team.
    public static func convForward(_ x: UnsafePointer<Float>, _ xs: [Int], _ w: UnsafePointer<Float>, _ ws: [Int],
                                   bias: UnsafePointer<Float>?, _ a: ConvAttributes,
                                   _ y: UnsafeMutablePointer<Float>, _ ys: [Int]) throws {
        let s = ConvShape(xs, ws, ys, a)
        let teams = min(ParallelFor.threads, s.n)
        if let geometry = ShiftedGeometry(s) {
            let taps = tapWeights(w, s)
            let padSize = geometry.imageCount(s), per = padSize + geometry.gridCount(s)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: per * teams)
            defer { scratch.deallocate() }
            var failure: Error?
            try taps.withUnsafeBufferPointer { tp in
                ParallelFor.run(s.n) { b, t in
                    do {
                        try shiftedForward(x + b * s.c * s.h * s.w, s, geometry, taps: tp.baseAddress!, bias: bias,
                                           padded: scratch + t * per, grid: scratch + t * per + padSize, y + b * s.m * s.columns)
                    } catch { failure = error }
                }
                if let failure { throw failure }
            }
            return
        }
        let colSize = max(1, s.isPointwise ? 1 : s.k * s.columns)
        let cols = UnsafeMutablePointer<Float>.allocate(capacity: colSize * teams)
        defer { cols.deallocate() }
        var failure: Error?
        ParallelFor.run(s.n) { b, t in
            let col = cols + t * colSize
            let image = x + b * s.c * s.h * s.w
            for g in 0..<a.groups {
                let out = y + (b * s.m + g * s.mPerG) * s.columns
                let source = columns(image, s, group: g, scratch: col)
                do {
                    try sgemm(false, false, m: s.mPerG, n: s.columns, k: s.k, w + g * s.mPerG * s.k, lda: s.k,
                              source, ldb: s.columns, beta: 0, out, ldc: s.columns)
                } catch { failure = error }
                if let bias {
                    for oc in 0..<s.mPerG {
                        let v = bias[g * s.mPerG + oc], line = out + oc * s.columns
                        for i in 0..<s.columns { line[i] += v }
                    }
                }
            }
        }
        if let failure { throw failure }
    }

    /// Bytes ``convBackward(_:_:_:_:_:_:_:dx:dw:dbias:)`` allocates for one call with
    /// `threads` OpenMP threads (a column matrix and a weight-gradient accumulator per
    /// thread; for stride-1 convolutions a padded image, an output grid and tap-major weight
    /// gradients per thread and the regrouped weights), the most any training convolution
    /// holds at once; the forward's buffers are smaller. The trainer's memory account adds the largest over its steps.
    public static func convBackwardScratchBytes(_ xs: [Int], _ ws: [Int], _ ys: [Int], _ a: ConvAttributes, threads: Int) -> Int {
        guard xs.count == 4, ws.count == 4, ys.count == 4 else { return 0 }
        let s = ConvShape(xs, ws, ys, a)
        let teams = max(1, min(threads, s.n))
        if let g = ShiftedGeometry(s) {
            let wSize = s.kh * s.kw * s.m * s.c
            return 4 * ((g.imageCount(s) + g.gridCount(s) + wSize) * teams + wSize)
        }
        return 4 * (max(1, s.k * s.columns) + s.m * s.k) * teams
    }

    /// Convolution backward: adds the gradients of the input, weight and bias (each when
    /// wanted) from the output gradient `dy`. Images are split over the OpenMP team; each
    /// thread sums its weight gradient apart, and the sums are added at the end.
    public static func convBackward(_ x: UnsafePointer<Float>, _ xs: [Int], _ w: UnsafePointer<Float>, _ ws: [Int],
                                    _ a: ConvAttributes, _ dy: UnsafePointer<Float>, _ ys: [Int],
                                    dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                                    dbias: UnsafeMutablePointer<Float>?) throws {
        let s = ConvShape(xs, ws, ys, a)
        let teams = min(ParallelFor.threads, s.n)
        if let geometry = ShiftedGeometry(s) {
            try shiftedConvBackward(x, s, geometry, w, dy, teams: teams, dx: dx, dw: dw)
            if let dbias { biasGradient(dy, s, into: dbias) }
            return
        }
        let colSize = max(1, s.k * s.columns), wSize = s.m * s.k
        let cols = UnsafeMutablePointer<Float>.allocate(capacity: colSize * teams)
        let dws = UnsafeMutablePointer<Float>.allocate(capacity: dw == nil ? 1 : wSize * teams)
        if dw != nil { dws.initialize(repeating: 0, count: wSize * teams) }
        defer { cols.deallocate(); dws.deallocate() }
        var failure: Error?
        ParallelFor.run(s.n) { b, t in
            let col = cols + t * colSize
            let image = x + b * s.c * s.h * s.w
            do {
                for g in 0..<a.groups {
                    let grad = dy + (b * s.m + g * s.mPerG) * s.columns
                    if dw != nil {
                        let source = columns(image, s, group: g, scratch: col)
                        try sgemm(false, true, m: s.mPerG, n: s.k, k: s.columns, grad, lda: s.columns, source, ldb: s.columns,
                                  beta: 1, dws + t * wSize + g * s.mPerG * s.k, ldc: s.k)
                    }
                    if let dx {
                        let dimage = dx + b * s.c * s.h * s.w
                        if s.isPointwise {
                            try sgemm(true, false, m: s.k, n: s.columns, k: s.mPerG, w + g * s.mPerG * s.k, lda: s.k,
                                      grad, ldb: s.columns, beta: 1, dimage + g * s.cPerG * s.h * s.w, ldc: s.columns)
                        } else {
                            try sgemm(true, false, m: s.k, n: s.columns, k: s.mPerG, w + g * s.mPerG * s.k, lda: s.k,
                                      grad, ldb: s.columns, beta: 0, col, ldc: s.columns)
                            col2imAdd(col, s, channel: g * s.cPerG, into: dimage)
                        }
                    }
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
        if let dw {
            for t in 0..<teams {
                let part = dws + t * wSize
                for i in 0..<wSize { dw[i] += part[i] }
            }
        }
        if let dbias { biasGradient(dy, s, into: dbias) }
    }

    static func biasGradient(_ dy: UnsafePointer<Float>, _ s: ConvShape, into dbias: UnsafeMutablePointer<Float>) {
        for b in 0..<s.n {
            for oc in 0..<s.m {
                let line = dy + (b * s.m + oc) * s.columns
                var sum: Float = 0
                for i in 0..<s.columns { sum += line[i] }
                dbias[oc] += sum
            }
        }
    }

    /// The shifted-product backward over the batch: per-thread buffers and tap-major weight
    /// gradients, summed and regrouped into `dw` at the end.
    static func shiftedConvBackward(_ x: UnsafePointer<Float>, _ s: ConvShape, _ geometry: ShiftedGeometry, _ w: UnsafePointer<Float>,
                                    _ dy: UnsafePointer<Float>, teams: Int, dx: UnsafeMutablePointer<Float>?,
                                    dw: UnsafeMutablePointer<Float>?) throws {
        let taps = tapWeights(w, s)
        let tapCount = s.kh * s.kw, wSize = tapCount * s.m * s.c
        let padSize = geometry.imageCount(s), gridSize = geometry.gridCount(s)
        let per = padSize + gridSize + (dw == nil ? 0 : wSize)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: per * teams)
        defer { scratch.deallocate() }
        if dw != nil { for t in 0..<teams { zero(scratch + t * per + padSize + gridSize, wSize) } }
        var failure: Error?
        try taps.withUnsafeBufferPointer { tp in
            ParallelFor.run(s.n) { b, t in
                let base = scratch + t * per
                do {
                    try shiftedBackward(x + b * s.c * s.h * s.w, s, geometry, taps: tp.baseAddress!, dy + b * s.m * s.columns,
                                        padded: base, grid: base + padSize, dtaps: dw == nil ? nil : base + padSize + gridSize,
                                        dimage: dx.map { $0 + b * s.c * s.h * s.w })
                } catch { failure = error }
            }
            if let failure { throw failure }
        }
        guard let dw else { return }
        for t in 0..<teams {
            let part = scratch + t * per + padSize + gridSize
            for tap in 0..<tapCount {
                for mi in 0..<s.m {
                    for ci in 0..<s.c { dw[(mi * s.c + ci) * tapCount + tap] += part[tap * s.m * s.c + mi * s.c + ci] }
                }
            }
        }
    }
}
