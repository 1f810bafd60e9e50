import CDNNL

/// oneDNN convolution (direct, grouped, dilated) with fused post-ops and an in-place residual sum.
extension PlanBuilder {
    mutating func convolution(_ step: Step, _ a: ConvAttributes) throws -> Bool {
        guard residualCount(step) <= 1, program.isConstant(step.inputs[1]),
              step.inputs.count < 3 || program.isConstant(step.inputs[2]) else { return false }
        let xs = program.shape(step.inputs[0]), ws = program.shape(step.inputs[1]), ys = program.shape(step.outputs[0])
        let g = a.groups
        let wdims = g > 1 ? [g, ws[0] / g] + Array(ws[1...]) : ws
        let t = computeType
        var src = try DNNL.any(xs, type: t), wts = try DNNL.any(wdims, type: t), dst = try DNNL.any(ys, type: t)
        var bias = step.inputs.count > 2 ? try DNNL.plain([ws[0]]) : dnnl_memory_desc_t()
        let rank = a.kernel.count
        let strides = DNNL.dims(a.strides), dil = DNNL.dims(a.dilations.map { $0 - 1 })
        let pl = DNNL.dims(Array(a.pads[..<rank])), pr = DNNL.dims(Array(a.pads[rank...]))
        var cd = dnnl_convolution_desc_t()
        try DNNL.check(dnnl_dilated_convolution_forward_desc_init(
            &cd, dnnl_forward_inference, dnnl_convolution_direct, &src, &wts, &bias, &dst,
            strides, dil, pl, pr), "convolution \(step.name)")
        let attr = try DNNL.Attributes(postOps: step.postOps)
        guard let pd = DNNL.primitiveDesc(&cd, attr: attr, engine: engine) else {
            if t != dnnl_f32 { throw MetronomeError.invalidArgument(PlanBuilder.noBF16(step)) }
            return false
        }
        guard let srcMd = DNNL.query(pd, dnnl_query_src_md), let wMd = DNNL.query(pd, dnnl_query_weights_md),
              let dstMd = DNNL.query(pd, dnnl_query_dst_md) else {
            dnnl_primitive_desc_destroy(pd)
            return false
        }
        let x = try locate(step.inputs[0], as: srcMd)
        let wTensor = program.constants[step.inputs[1]]!
        let tags: [(dnnl_format_tag_t, dnnl_format_tag_t)] = [(dnnl_oiw, dnnl_goiw), (dnnl_oihw, dnnl_goihw), (dnnl_oidhw, dnnl_goidhw)]
        let tag = g > 1 ? tags[rank - 1].1 : tags[rank - 1].0
        let w = try constant(wTensor.scalars, from: DNNL.desc(wdims, tag: tag), as: wMd)
        var args = [Argument(kind: Arg.src, desc: srcMd, ref: x.ref), Argument(kind: Arg.weights, desc: wMd, ref: w.ref)]
        if step.inputs.count > 2 {
            let b = try locate(step.inputs[2], as: bias)
            args.append(Argument(kind: Arg.bias, desc: bias, ref: b.ref))
        }
        let y = try destination(for: step, desc: dstMd, avoiding: x.ref)
        args.append(Argument(kind: Arg.dst, desc: dstMd, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
    }
}
