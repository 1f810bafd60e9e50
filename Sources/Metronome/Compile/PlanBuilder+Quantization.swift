import CDNNL

/// The int8 path: QuantizeLinear and DequantizeLinear as oneDNN reorders with scales and
/// zero points, and quantized convolutions and inner products on oneDNN's integer kernels
/// (u8 or s8 data, s8 weights, s32 accumulation, then the output scales, the post-ops and an
/// optional requantization to 8 bits).
extension PlanBuilder {
    /// `md`'s layout holding `type` (plain and blocked layouts count elements, so they carry over).
    static func retyped(_ md: dnnl_memory_desc_t, _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
        var m = md
        m.data_type = type
        m.extra = dnnl_memory_extra_desc_t()
        return m
    }

    /// oneDNN attributes for reorders and integer kernels: output scales (one, or one per index
    /// of `scaleAxis`) and constant zero points per argument.
    static func quantizationAttributes(scales: [Float], scaleAxis: Int?, zeroPoints: [(Int32, Int)],
                                       postOps: [PostOp] = [], requantize: Quantization? = nil) throws -> DNNL.Attributes {
        let attr = try DNNL.Attributes(postOps: requantize == nil ? postOps : [])
        if let requantize {
            // Requantization after the activations: a last linear post-op `x / scale + zero point`
            // (oneDNN then rounds to nearest even and saturates to the destination type; its
            // inner product has no destination zero point, so this form serves both).
            var po: OpaquePointer?
            try DNNL.check(dnnl_post_ops_create(&po), "post-op creation")
            defer { dnnl_post_ops_destroy(po) }
            for case .eltwise(let f) in postOps {
                for (alg, a, b) in f.oneDNNAlgorithms { try DNNL.check(dnnl_post_ops_append_eltwise(po, 1, alg, a, b), "eltwise post-op") }
            }
            try DNNL.check(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_linear, 1 / requantize.scales[0],
                                                         Float(requantize.zeroPoints[0])), "requantization post-op")
            try DNNL.check(dnnl_primitive_attr_set_post_ops(attr.handle, po), "setting post-ops")
        }
        let mask: Int32 = scales.count > 1 ? Int32(1 << (scaleAxis ?? 1)) : 0
        try DNNL.check(dnnl_primitive_attr_set_output_scales(attr.handle, Int64(scales.count), mask, scales), "output scales")
        for (arg, zp) in zeroPoints where zp != 0 {
            var z = Int32(zp)
            try DNNL.check(dnnl_primitive_attr_set_zero_points(attr.handle, arg, 1, 0, &z), "zero points")
        }
        return attr
    }

    /// QuantizeLinear (float to integers) or DequantizeLinear (integers to float) as one reorder
    /// that keeps the input's layout; false (reference kernel) for a constant input or several
    /// zero points.
    mutating func quantizeReorder(_ step: Step, _ map: Quantization, dequantize: Bool) throws -> Bool {
        guard map.zeroPoints.allSatisfy({ $0 == map.zeroPoints[0] }), map.type != .int32 || dequantize,
              let held = location[step.inputs[0]] else { return false }
        let q = map.type.dnnl
        var src: Location
        if dequantize {
            // Integers held as float (a reference kernel's output) are converted exactly first.
            src = held.desc.data_type == q ? held : try locate(step.inputs[0], as: Self.retyped(held.desc, q))
        } else {
            src = held.desc.data_type == dnnl_f32 ? held : try locate(step.inputs[0], as: Self.retyped(held.desc, dnnl_f32))
        }
        // Integer convolutions read channels-last data: quantized 4-D values are written so.
        let shape = program.shape(step.outputs[0])
        let dstDesc = !dequantize && shape.count == 4 ? try DNNL.desc(shape, tag: dnnl_acdb, type: q)
            : Self.retyped(src.desc, dequantize ? dnnl_f32 : q)
        let scales = dequantize ? map.scales : map.scales.map { 1 / $0 }
        let zp = map.zeroPoints[0]
        if !dequantize && zp % 2 != 0 {
            // oneDNN rounds `x / scale + zero point`, ONNX `round(x / scale) + zero point`: on a
            // tie (x / scale = k + 0.5) they differ when the zero point is odd. Rounding to int32
            // first and adding the zero point in a second, exact reorder gives ONNX's result.
            let rounded = newArena(Self.retyped(dstDesc, dnnl_s32), holding: step.outputs[0])
            let first = try Self.quantizationAttributes(scales: scales, scaleAxis: map.axis, zeroPoints: [])
            guard try reorder(src, rounded, first, name: step.name + " (round)") else { return false }
            let second = try Self.quantizationAttributes(scales: [1], scaleAxis: nil, zeroPoints: [(Arg.dst, zp)])
            let out = newArena(dstDesc, holding: step.outputs[0])
            location[step.outputs[0]] = out
            return try reorder(rounded, out, second, name: step.name)
        }
        let attr = try Self.quantizationAttributes(scales: scales, scaleAxis: map.axis,
                                                   zeroPoints: [(dequantize ? Arg.src : Arg.dst, zp)])
        let out = newArena(dstDesc, holding: step.outputs[0])
        location[step.outputs[0]] = out
        return try reorder(src, out, attr, name: step.name)
    }

    /// A reorder with attributes; false when oneDNN has none for these descriptors.
    mutating func reorder(_ from: Location, _ to: Location, _ attr: DNNL.Attributes, name: String) throws -> Bool {
        var s = from.desc, d = to.desc
        var pd: OpaquePointer?
        guard dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, attr.handle) == dnnl_success, let pd else {
            return false
        }
        try emit(pd, [Argument(kind: Arg.src, desc: s, ref: from.ref), Argument(kind: Arg.dst, desc: d, ref: to.ref)], name: name)
        return true
    }

    /// A quantized convolution or inner product on oneDNN's integer kernels.
    mutating func quantizedLinear(_ step: Step, _ a: QuantizedLinearOperator.Attributes) throws -> Bool {
        guard residualCount(step) <= 1, a.input.isPerTensor, program.isConstant(step.inputs[1]),
              step.inputs.count < 3 || program.isConstant(step.inputs[2]) else { return false }
        let xs = program.shape(step.inputs[0]), ws = program.shape(step.inputs[1]), ys = program.shape(step.outputs[0])
        let dstType = a.output?.type.dnnl ?? dnnl_f32
        let outChannels = ws[0]
        let scales = (0..<(a.weightScales.count)).map { a.input.scales[0] * a.weightScales[$0] }
        // oneDNN 2.x adds the bias to the integer accumulator before the output scales, so the
        // bias is given in accumulator units. Its inner product has no source zero point; that
        // is exact as a bias term instead: Σ (x - z)·w = Σ x·w - z·Σ w (no padding to mind).
        let weightValues = program.constants[step.inputs[1]]!.scalars
        let inputZeroPoint = a.input.zeroPoints[0]
        let foldZeroPoint = a.kind == .innerProduct && inputZeroPoint != 0
        var biasValues: [Float]? = nil
        if step.inputs.count > 2 || foldZeroPoint {
            let real = step.inputs.count > 2 ? program.constants[step.inputs[2]]!.scalars : [Float](repeating: 0, count: outChannels)
            let perChannel = weightValues.count / outChannels
            biasValues = (0..<outChannels).map { o in
                var b = real[o] / scales[scales.count == 1 ? 0 : o]
                if foldZeroPoint {
                    var sum: Float = 0
                    for j in 0..<perChannel { sum += weightValues[o * perChannel + j] }
                    b -= Float(inputZeroPoint) * sum
                }
                return b
            }
        }
        var bias = biasValues != nil ? try DNNL.plain([outChannels]) : dnnl_memory_desc_t()
        let postOps = a.output == nil ? step.postOps : a.activations.map { PostOp.eltwise($0) }
        let attr = try Self.quantizationAttributes(
            scales: scales, scaleAxis: 1,
            zeroPoints: [(Arg.src, foldZeroPoint ? 0 : inputZeroPoint)],
            postOps: postOps, requantize: a.output)
        var pd: OpaquePointer?
        let wPlain: dnnl_memory_desc_t
        switch a.kind {
        case .conv(let c):
            let g = c.groups
            let wdims = g > 1 ? [g, ws[0] / g] + Array(ws[1...]) : ws
            var src = try DNNL.any(xs, type: a.input.type.dnnl), wts = try DNNL.any(wdims, type: dnnl_s8)
            var dst = try DNNL.any(ys, type: dstType)
            var cd = dnnl_convolution_desc_t()
            try DNNL.check(dnnl_dilated_convolution_forward_desc_init(
                &cd, dnnl_forward_inference, dnnl_convolution_direct, &src, &wts, &bias, &dst,
                DNNL.dims(c.strides), DNNL.dims(c.dilations.map { $0 - 1 }), DNNL.dims([c.pads[0], c.pads[1]]),
                DNNL.dims([c.pads[2], c.pads[3]])), "quantized convolution \(step.name)")
            pd = DNNL.primitiveDesc(&cd, attr: attr, engine: engine)
            wPlain = try DNNL.desc(wdims, tag: g > 1 ? dnnl_goihw : dnnl_oihw)
        case .innerProduct:
            guard xs.count == 2, ys.count == 2 else { return false }
            var src = try DNNL.desc(xs, tag: dnnl_ab, type: a.input.type.dnnl), wts = try DNNL.any(ws, type: dnnl_s8)
            var dst = try DNNL.desc(ys, tag: dnnl_ab, type: dstType)
            var d = dnnl_inner_product_desc_t()
            try DNNL.check(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &src, &wts, &bias, &dst),
                           "quantized inner product \(step.name)")
            pd = DNNL.primitiveDesc(&d, attr: attr, engine: engine)
            wPlain = try DNNL.plain(ws)
        }
        guard let pd else {
            // No silent fallback to the (slow) reference kernel: say what is missing.
            throw MetronomeError.invalidArgument(
                "--precision int8: oneDNN has no 8-bit kernel for '\(step.name)' (\(a.input.type.rawValue) data, int8 weights) on this CPU (it needs at least SSE4.1; AVX-512 VNNI makes it fast); use --precision fp32 to run the quantized model in float")
        }
        guard let srcMd = DNNL.query(pd, dnnl_query_src_md), let wMd = DNNL.query(pd, dnnl_query_weights_md),
              let dstMd = DNNL.query(pd, dnnl_query_dst_md) else {
            dnnl_primitive_desc_destroy(pd)
            return false
        }
        let x = try locate(step.inputs[0], as: srcMd)
        let w = try constant(weightValues, from: wPlain, as: wMd)
        var args = [Argument(kind: Arg.src, desc: srcMd, ref: x.ref), Argument(kind: Arg.weights, desc: wMd, ref: w.ref)]
        if let biasValues {
            let b = try constant(biasValues, from: bias, as: bias)
            args.append(Argument(kind: Arg.bias, desc: bias, ref: b.ref))
        }
        let y = try destination(for: step, desc: dstMd, avoiding: x.ref)
        args.append(Argument(kind: Arg.dst, desc: dstMd, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
    }
}
