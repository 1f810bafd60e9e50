/// Typed attributes of `ConvTranspose` (2-D, NCHW). Weight `[C, M/group, kH, kW]`.
struct ConvTransposeAttributes: Hashable, Sendable {
    var kernel: [Int]
    var strides: [Int]
    var dilations: [Int]
    var groups: Int
    var outputPadding: [Int]
    /// Explicit `[top, left, bottom, right]`; resolved from `auto_pad` or `output_shape` by
    /// shape inference.
    var pads: [Int]
    /// `NOTSET`, `VALID`, `SAME_UPPER` or `SAME_LOWER`.
    var autoPad: String
    /// The requested spatial output size; nil when the pads decide it.
    var outputShape: [Int]?
}

/// `ConvTranspose`: the adjoint of a 2-D convolution (each input pixel scatters a kernel-sized
/// patch), with groups, strides, dilations, pads, `output_padding`, `output_shape` and
/// `auto_pad`. oneDNN's deconvolution runs it when the weights are constant; the reference
/// kernel otherwise.
struct ConvTransposeOperator: Operator {
    var onnxNames: [String] { ["ConvTranspose"] }

    func attributes(of opType: String) -> [String] {
        ["auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides"]
    }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(2...3)
        var kernel = try p.spatial("kernel_shape", default: [0, 0])
        let strides = try p.spatial("strides", default: [1, 1])
        let dilations = try p.spatial("dilations", default: [1, 1])
        let outputPadding = try p.spatial("output_padding", default: [0, 0])
        let group = try p.int("group", default: 1)
        guard group >= 1 else { throw p.fail("group must be at least 1, got \(group)") }
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }) else {
            throw p.fail("strides and dilations must be positive")
        }
        guard outputPadding.allSatisfy({ $0 >= 0 }) else { throw p.fail("output_padding \(outputPadding) must not be negative") }
        guard (0..<2).allSatisfy({ outputPadding[$0] < max(strides[$0], dilations[$0]) }) else {
            throw p.fail("output_padding \(outputPadding) must be smaller than the stride or the dilation")
        }
        var outputShape = try p.ints("output_shape")
        if let s = outputShape {
            guard s.count == 2 || s.count == 4 else {
                throw p.fail("output_shape \(s) must give 2 spatial sizes; only 2-D (NCHW) operators are supported")
            }
            outputShape = Array(s.suffix(2))
        }
        if let w = p.input(1), let t = p.graph.initializers[w], t.rank == 4, kernel == [0, 0] {
            kernel = Array(t.shape[2...])
        }
        let autoPad = try p.string("auto_pad", default: "NOTSET")
        guard ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(autoPad) else {
            throw p.fail("unsupported auto_pad '\(autoPad)'; use NOTSET, VALID, SAME_UPPER or SAME_LOWER")
        }
        let pads = try p.spatial("pads", default: [0, 0, 0, 0])
        guard pads.allSatisfy({ $0 >= 0 }) else { throw p.fail("negative pads \(pads) are not supported") }
        if autoPad == "VALID" && pads.contains(where: { $0 != 0 }) { throw p.fail("auto_pad VALID with explicit pads") }
        // Bounds that keep the extent arithmetic of shape inference far from overflow.
        let limit = 1 << 20
        guard (kernel + strides + dilations + outputPadding + pads + (outputShape ?? []) + [group]).allSatisfy({ $0 <= limit }) else {
            throw p.fail("kernel, strides, dilations, pads, output sizes and group must be at most \(limit)")
        }
        let a = ConvTransposeAttributes(kernel: kernel, strides: strides, dilations: dilations, groups: group,
                                        outputPadding: outputPadding, pads: pads, autoPad: autoPad, outputShape: outputShape)
        return (.custom(CustomAttributes(a)), [n.inputs[0], n.inputs[1]] + (p.input(2).map { [$0] } ?? []))
    }

    /// Output extent `s·(i − 1) + output_padding + (k − 1)·d + 1 − pads`; with `output_shape`
    /// or `SAME_*` the pads are whatever reaches the requested size (`SAME_*`: input × stride),
    /// the odd one at the end for SAME_UPPER and at the start otherwise, as ONNX specifies; a
    /// requested size beyond the full extent becomes extra `output_padding`.
    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .custom(let custom) = op, var a = custom.as(ConvTransposeAttributes.self) else {
            throw unexpected(op, c.node.name, c.node.opType)
        }
        let x = inputs[0], w = inputs[1]
        guard x.count == 4 else { throw c.fail("input must be 4-D NCHW, got shape \(x)") }
        guard w.count == 4 else { throw c.fail("weight must be 4-D [C, M/group, kH, kW], got shape \(w)") }
        if a.kernel == [0, 0] { a.kernel = [w[2], w[3]] }
        guard a.kernel == [w[2], w[3]] else { throw c.fail("kernel_shape \(a.kernel) does not match weight shape \(w)") }
        guard x[1] == w[0] else { throw c.fail("input has \(x[1]) channels but weight \(w) expects \(w[0])") }
        guard w[0] % a.groups == 0 else { throw c.fail("\(w[0]) input channels are not divisible by group \(a.groups)") }
        let m = w[1] * a.groups
        if inputs.count == 3 && inputs[2] != [m] { throw c.fail("bias has shape \(inputs[2]) but must be [\(m)]") }
        let full = (0..<2).map { (i: Int) -> Int in
            let extent: Int = (a.kernel[i] - 1) * a.dilations[i] + 1
            let strided: Int = a.strides[i] * (x[2 + i] - 1)
            return strided + a.outputPadding[i] + extent
        }
        let outputPadding = a.outputPadding
        let target: [Int]? = a.outputShape ?? (a.autoPad.hasPrefix("SAME") ? [x[2] * a.strides[0], x[3] * a.strides[1]] : nil)
        if let target {
            var begin = [0, 0], end = [0, 0]
            for i in 0..<2 {
                let total = full[i] - target[i]
                if total < 0 {
                    // A larger output than the kernels reach: extra output padding at the end
                    // (bias only), as ONNX Runtime and the ONNX reference compute it.
                    a.outputPadding[i] += -total
                    continue
                }
                begin[i] = a.autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                end[i] = total - begin[i]
            }
            a.pads = begin + end
        }
        let out = try (0..<2).map { i -> Int in
            let o = full[i] + (a.outputPadding[i] - outputPadding[i]) - a.pads[i] - a.pads[i + 2]
            guard o > 0 else { throw c.fail("pads \(a.pads) leave no output for input \(x)") }
            return o
        }
        _ = try c.checkedCount([x[0], m] + out)
        return (.custom(CustomAttributes(a)), [[x[0], m] + out])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .custom(let custom) = step.op, let a = custom.as(ConvTransposeAttributes.self) else {
            throw unexpected(step.op, step.name, step.opType)
        }
        ReferenceKernels.convTranspose(x[0], xs[0], weight: x[1], xs[1], bias: x.count > 2 ? x[2] : nil, a,
                                       out: y[0], ys[0])
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .custom(let custom) = step.op, let a = custom.as(ConvTransposeAttributes.self) else { return false }
        return try b.deconvolution(step, a)
    }

    /// Activations become oneDNN post-ops (the reference path applies them after the kernel).
    func acceptsFusedActivation(_ step: Step) -> Bool { true }

    func window(_ step: Step, in program: Program) -> KernelWindow? {
        guard case .custom(let custom) = step.op, let a = custom.as(ConvTransposeAttributes.self) else { return nil }
        return KernelWindow(kernel: a.kernel, strides: a.strides, dilations: a.dilations, groups: a.groups)
    }

    /// The MACs of the convolution it is the adjoint of: N·C·H·W·(M/group)·kH·kW (every input
    /// element meets every weight of its group once); FLOPs = 2 × MACs plus one per output
    /// element for a bias.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        let x = p.shape(step.inputs[0]), w = p.shape(step.inputs[1])
        let macs = x.reduce(1, *) * w[1] * w[2] * w[3]
        let bias = step.inputs.count > 2 ? p.values[step.outputs[0]].count : 0
        return OperatorCost(category: .convolution, macs: macs, flops: 2 * macs + bias, biasFlops: bias,
                            kernelElements: p.values[step.inputs[1]].count)
    }

    /// Ungrouped with constant weights, it chooses its output channels like a convolution
    /// (the weight's axis 1 follows them, axis 0 the input's); grouped, it fixes them.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard case .custom(let custom) = step.op, let a = custom.as(ConvTransposeAttributes.self),
              step.inputs.dropFirst().allSatisfy(p.isConstant) else {
            return .pinned("transposed convolution '\(step.name)' has computed weights")
        }
        return a.groups == 1 ? .free : .pinned("grouped transposed convolution '\(step.name)' (group \(a.groups))")
    }

    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        guard case .custom(let custom) = step.op, let a = custom.as(ConvTransposeAttributes.self),
              step.inputs.dropFirst().allSatisfy(p.isConstant) else { return ChannelResize() }
        guard a.groups == 1 else { return ChannelResize(fixed: "grouped transposed convolution cannot be resized") }
        var r = ChannelResize()
        let w = p.shape(step.inputs[1])
        r.inputs[step.inputs[1]] = .weight(output: 1, input: 0, fanInPerChannel: w[2] * w[3])
        if step.inputs.count > 2 { r.inputs[step.inputs[2]] = .perChannel(axis: 0) }
        return r
    }
}

extension ReferenceKernels {
    /// Transposed convolution by scattering: `y[n, g·M' + m, i·s + k·d − pad] += x[n, g·C' + c, i] ·
    /// w[g·C' + c, m, k]` over both spatial axes, plus the bias.
    static func convTranspose(_ x: In, _ xs: [Int], weight w: In, _ ws: [Int], bias: In?,
                              _ a: ConvTransposeAttributes, out y: Out, _ ys: [Int]) {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (m, oh, ow) = (ys[1], ys[2], ys[3])
        let (kh, kw) = (ws[2], ws[3])
        let cPerG = c / a.groups, mPerG = ws[1]
        let (sh, sw) = (a.strides[0], a.strides[1])
        let (dh, dw) = (a.dilations[0], a.dilations[1])
        let (pt, pl) = (a.pads[0], a.pads[1])
        for b in 0..<n {
            for oc in 0..<m {
                let dst = y + (b * m + oc) * oh * ow
                let initial = bias?[oc] ?? 0
                for i in 0..<(oh * ow) { dst[i] = initial }
            }
            for ic in 0..<c {
                let g = ic / cPerG
                let src = x + (b * c + ic) * h * wd
                for mg in 0..<mPerG {
                    let oc = g * mPerG + mg
                    let dst = y + (b * m + oc) * oh * ow
                    let wk = w + (ic * mPerG + mg) * kh * kw
                    for iy in 0..<h {
                        for ky in 0..<kh {
                            let oy = iy * sh + ky * dh - pt
                            if oy < 0 || oy >= oh { continue }
                            for ix in 0..<wd {
                                let v = src[iy * wd + ix]
                                for kx in 0..<kw {
                                    let ox = ix * sw + kx * dw - pl
                                    if ox < 0 || ox >= ow { continue }
                                    dst[oy * ow + ox] += v * wk[ky * kw + kx]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
