import CDNNL

/// oneDNN deconvolution (transposed convolution) with constant weights and fused activations.
extension PlanBuilder {
    mutating func deconvolution(_ step: Step, _ a: ConvTransposeAttributes) throws -> Bool {
        guard residualCount(step) == 0, program.isConstant(step.inputs[1]),
              step.inputs.count < 3 || program.isConstant(step.inputs[2]),
              let wTensor = program.constants[step.inputs[1]] else { return false }
        let xs = program.shape(step.inputs[0]), ws = program.shape(step.inputs[1]), ys = program.shape(step.outputs[0])
        let g = a.groups, m = ys[1]
        // oneDNN's weights are [(G,) OC/G, IC/G, kH, kW]; ONNX stores [IC, OC/G, kH, kW], which
        // is oneDNN's `iohw` (`giohw` grouped) physical order.
        let wdims = g > 1 ? [g, ws[1], ws[0] / g, ws[2], ws[3]] : [ws[1], ws[0], ws[2], ws[3]]
        var src = try DNNL.any(xs), wts = try DNNL.any(wdims), dst = try DNNL.any(ys)
        var bias = step.inputs.count > 2 ? try DNNL.plain([m]) : dnnl_memory_desc_t()
        // output_padding extends the far end: it is padding taken back there.
        let padR = [a.pads[2] - a.outputPadding[0], a.pads[3] - a.outputPadding[1]]
        var d = dnnl_deconvolution_desc_t()
        let status = dnnl_dilated_deconvolution_forward_desc_init(
            &d, dnnl_forward_inference, dnnl_deconvolution_direct, &src, &wts, &bias, &dst,
            DNNL.dims(a.strides), DNNL.dims(a.dilations.map { $0 - 1 }), DNNL.dims([a.pads[0], a.pads[1]]), DNNL.dims(padR))
        guard status == dnnl_success else { return false }
        guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(postOps: step.postOps), engine: engine) else { return false }
        guard let srcMd = DNNL.query(pd, dnnl_query_src_md), let wMd = DNNL.query(pd, dnnl_query_weights_md),
              let dstMd = DNNL.query(pd, dnnl_query_dst_md) else {
            dnnl_primitive_desc_destroy(pd)
            return false
        }
        let x = try locate(step.inputs[0], as: srcMd)
        let w = try constant(wTensor.scalars, from: DNNL.desc(wdims, tag: g > 1 ? dnnl_giohw : dnnl_iohw), as: wMd)
        var args = [Argument(kind: Arg.src, desc: srcMd, ref: x.ref), Argument(kind: Arg.weights, desc: wMd, ref: w.ref)]
        if step.inputs.count > 2 {
            let b = try locate(step.inputs[2], as: bias)
            args.append(Argument(kind: Arg.bias, desc: bias, ref: b.ref))
        }
        let y = newArena(dstMd, holding: step.outputs[0])
        location[step.outputs[0]] = y
        args.append(Argument(kind: Arg.dst, desc: dstMd, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
    }
}
