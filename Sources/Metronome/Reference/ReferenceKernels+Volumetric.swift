/// Convolution and pooling over any number of spatial axes (3-D NCDHW volumes; the 2-D
/// kernels in ReferenceKernels.swift stay the faster path for images). Windows walk an
/// odometer over the kernel's axes; pads are all begins, then all ends.
extension ReferenceKernels {
    /// Calls `body` with each multi-index of `extent` in row-major order.
    static func forEachIndex(_ extent: [Int], _ body: ([Int]) -> Void) {
        guard extent.allSatisfy({ $0 > 0 }) else { return }
        var index = Array(repeating: 0, count: extent.count)
        while true {
            body(index)
            var d = extent.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < extent[d] { break }
                index[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }

    public static func convND(_ x: In, _ xs: [Int], weight w: In, _ ws: [Int], bias: In?,
                              _ a: ConvAttributes, out y: Out, _ ys: [Int]) {
        let n = xs[0], c = xs[1], m = ys[1]
        let inSpatial = Array(xs[2...]), outSpatial = Array(ys[2...]), kernel = Array(ws[2...])
        let rank = inSpatial.count
        let cPerG = c / a.groups, mPerG = m / a.groups
        let inStrides = rowMajorStrides(inSpatial), kStrides = rowMajorStrides(kernel)
        let inPlane = inSpatial.reduce(1, *), outPlane = outSpatial.reduce(1, *), kSize = kernel.reduce(1, *)
        for b in 0..<n {
            for oc in 0..<m {
                let g = oc / mPerG
                var o = 0
                forEachIndex(outSpatial) { out in
                    var sum: Float = bias?[oc] ?? 0
                    for ic in 0..<cPerG {
                        let src = x + (b * c + g * cPerG + ic) * inPlane
                        let wt = w + (oc * cPerG + ic) * kSize
                        forEachIndex(kernel) { k in
                            var offset = 0
                            for d in 0..<rank {
                                let i = out[d] * a.strides[d] - a.pads[d] + k[d] * a.dilations[d]
                                if i < 0 || i >= inSpatial[d] { return }
                                offset += i * inStrides[d]
                            }
                            var kOffset = 0
                            for d in 0..<rank { kOffset += k[d] * kStrides[d] }
                            sum += src[offset] * wt[kOffset]
                        }
                    }
                    y[(b * m + oc) * outPlane + o] = sum
                    o += 1
                }
            }
        }
    }

    /// Max and average pooling over any number of spatial axes, with the rules of ``pool``,
    /// and dilated windows (average pooling counts the taps, as ONNX's reference does).
    public static func poolND(_ x: In, _ xs: [Int], _ a: PoolAttributes, max isMax: Bool,
                              countIncludePad: Bool, out y: Out, _ ys: [Int]) {
        let inSpatial = Array(xs[2...]), outSpatial = Array(ys[2...])
        let rank = inSpatial.count
        let inStrides = rowMajorStrides(inSpatial)
        let inPlane = inSpatial.reduce(1, *), outPlane = outSpatial.reduce(1, *)
        for plane in 0..<(xs[0] * xs[1]) {
            let src = x + plane * inPlane
            var o = 0
            forEachIndex(outSpatial) { out in
                var acc: Float = isMax ? -.infinity : 0
                var inside = 0
                forEachIndex(a.kernel) { k in
                    var offset = 0
                    for d in 0..<rank {
                        let i = out[d] * a.strides[d] - a.pads[d] + k[d] * a.dilations[d]
                        if i < 0 || i >= inSpatial[d] { return }
                        offset += i * inStrides[d]
                    }
                    let v = src[offset]
                    if isMax { acc = Swift.max(acc, v) } else { acc += v }
                    inside += 1
                }
                if !isMax {
                    var divisor = inside
                    if countIncludePad {
                        // Taps in the input or its padding count; taps beyond the end padding
                        // (ceil mode's extra windows) do not.
                        divisor = 1
                        for d in 0..<rank {
                            let start = out[d] * a.strides[d] - a.pads[d]
                            divisor *= (0..<a.kernel[d]).filter { start + $0 * a.dilations[d] < inSpatial[d] + a.pads[rank + d] }.count
                        }
                    }
                    acc /= Float(Swift.max(divisor, 1))
                }
                y[plane * outPlane + o] = acc
                o += 1
            }
        }
    }
}
