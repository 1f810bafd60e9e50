/// Training convolutions with stride 1 as shifted matrix products over a padded image, instead
/// of im2col: for each kernel tap (ky, kx), the padded image read from offset ky·Wp + kx *is*
/// the tap's column matrix (channels × output rows of Wp columns), so the K·OH·OW column
/// matrix is never written. Outputs are computed on an OH × Wp grid whose last Wp − OW columns
/// per row are discarded; the reads that feed them run past a row or a plane, into spacing
/// that keeps them inside the buffer and the planes apart. im2col and col2im were a third of a ResNet-8
/// training step.
extension GemmKernels {
    /// The padded-grid geometry of a stride-1, undilated, single-group convolution, or nil when
    /// the convolution is not one (those keep im2col).
    struct ShiftedGeometry {
        let hp: Int, wp: Int, top: Int, left: Int, kw: Int
        /// Channel stride of a padded buffer: a plane and `kw` floats of spacing, so that a
        /// tap's rows, which run up to `kw − 1` floats past their plane, never overlap the next
        /// channel's (the input gradient's product writes them).
        var stride: Int { hp * wp + kw }
        /// Elements of one padded image: `c` strides and `kw` trailing floats.
        func imageCount(_ s: ConvShape) -> Int { s.c * stride + s.kw }
        /// Elements of one output on the grid: `m` rows of `oh · wp`.
        func gridCount(_ s: ConvShape) -> Int { s.m * s.oh * wp }

        init?(_ s: ConvShape) {
            let a = s.a
            // Each tap's product has the input channels as its inner dimension: with fewer than
            // eight, the products are too thin to beat im2col's one (ResNet-8's one-channel stem
            // ran 60% slower shifted).
            guard a.groups == 1, a.strides == [1, 1], a.dilations == [1, 1], a.pads.count == 4, !s.isPointwise, s.c >= 8 else {
                return nil
            }
            hp = s.h + a.pads[0] + a.pads[2]
            wp = s.w + a.pads[1] + a.pads[3]
            top = a.pads[0]
            left = a.pads[1]
            kw = s.kw
            guard s.oh == hp - s.kh + 1, s.ow == wp - s.kw + 1, s.oh > 0, s.ow > 0 else { return nil }
        }

        /// Copies one image into `p` with zero borders.
        func pad(_ image: UnsafePointer<Float>, _ s: ConvShape, into p: UnsafeMutablePointer<Float>) {
            zero(p, imageCount(s))
            for c in 0..<s.c {
                for y in 0..<s.h {
                    copy(image + (c * s.h + y) * s.w, to: p + c * stride + (y + top) * wp + left, s.w)
                }
            }
        }
    }

    /// `w[m, c, ky, kx]` regrouped by tap: `taps[(ky·kw + kx)·m·c + mi·c + ci]`.
    static func tapWeights(_ w: UnsafePointer<Float>, _ s: ConvShape) -> [Float] {
        let taps = s.kh * s.kw
        var r = [Float](repeating: 0, count: taps * s.m * s.c)
        for mi in 0..<s.m {
            for ci in 0..<s.c {
                for t in 0..<taps { r[t * s.m * s.c + mi * s.c + ci] = w[(mi * s.c + ci) * taps + t] }
            }
        }
        return r
    }

    /// Forward of one image: nine (kh·kw) products into the grid, then the valid columns out.
    static func shiftedForward(_ image: UnsafePointer<Float>, _ s: ConvShape, _ g: ShiftedGeometry, taps: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, padded: UnsafeMutablePointer<Float>, grid: UnsafeMutablePointer<Float>,
                               _ out: UnsafeMutablePointer<Float>) throws {
        g.pad(image, s, into: padded)
        let n = s.oh * g.wp
        for ky in 0..<s.kh {
            for kx in 0..<s.kw {
                let t = ky * s.kw + kx
                try sgemm(false, false, m: s.m, n: n, k: s.c, taps + t * s.m * s.c, lda: s.c, padded + ky * g.wp + kx, ldb: g.stride,
                          beta: t == 0 ? 0 : 1, grid, ldc: n)
            }
        }
        for mi in 0..<s.m {
            for oy in 0..<s.oh {
                let row = out + (mi * s.oh + oy) * s.ow
                copy(grid + mi * n + oy * g.wp, to: row, s.ow)
                if let bias { for i in 0..<s.ow { row[i] += bias[mi] } }
            }
        }
    }

    /// Backward of one image: the output gradient spread on the grid (zeros in the discarded
    /// columns, so they add nothing), the weight gradient per tap into `dtaps`, and the input
    /// gradient through a padded buffer cropped back onto `dimage`.
    static func shiftedBackward(_ image: UnsafePointer<Float>, _ s: ConvShape, _ g: ShiftedGeometry, taps: UnsafePointer<Float>,
                                _ grad: UnsafePointer<Float>, padded: UnsafeMutablePointer<Float>, grid: UnsafeMutablePointer<Float>,
                                dtaps: UnsafeMutablePointer<Float>?, dimage: UnsafeMutablePointer<Float>?) throws {
        let n = s.oh * g.wp
        for mi in 0..<s.m {
            for oy in 0..<s.oh {
                let row = grid + mi * n + oy * g.wp
                copy(grad + (mi * s.oh + oy) * s.ow, to: row, s.ow)
                zero(row + s.ow, g.wp - s.ow)
            }
        }
        if let dtaps {
            g.pad(image, s, into: padded)
            for t in 0..<(s.kh * s.kw) {
                let (ky, kx) = (t / s.kw, t % s.kw)
                try sgemm(false, true, m: s.m, n: s.c, k: n, grid, lda: n, padded + ky * g.wp + kx, ldb: g.stride,
                          beta: 1, dtaps + t * s.m * s.c, ldc: s.c)
            }
        }
        if let dimage {
            zero(padded, g.imageCount(s))
            for t in 0..<(s.kh * s.kw) {
                let (ky, kx) = (t / s.kw, t % s.kw)
                try sgemm(true, false, m: s.c, n: n, k: s.m, taps + t * s.m * s.c, lda: s.c, grid, ldb: n,
                          beta: 1, padded + ky * g.wp + kx, ldc: g.stride)
            }
            for c in 0..<s.c {
                for y in 0..<s.h {
                    add(padded + c * g.stride + (y + g.top) * g.wp + g.left, into: dimage + (c * s.h + y) * s.w, s.w)
                }
            }
        }
    }
}
