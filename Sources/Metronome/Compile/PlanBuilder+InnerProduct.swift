import CDNNL

/// oneDNN inner product for Gemm (alpha folded into the weights, beta into the bias).
extension PlanBuilder {
    mutating func innerProduct(_ step: Step, _ alpha: Float, _ beta: Float, _ transA: Bool, _ transB: Bool) throws -> Bool {
        guard !transA, residualCount(step) <= 1, let b = program.constants[step.inputs[1]] else { return false }
        let xs = program.shape(step.inputs[0]), ys = program.shape(step.outputs[0])
        let (k, n) = (xs[1], ys[1])
        var biasValues: [Float]? = nil
        if step.inputs.count > 2 {
            guard let c = program.constants[step.inputs[2]], c.count == n, c.shape.last == n else { return false }
            biasValues = c.scalars.map { $0 * beta }
        }
        // oneDNN's inner product wants weights as [N, K]; fold alpha into them.
        var w = [Float](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k { w[i * k + j] = alpha * (transB ? b.scalars[i * k + j] : b.scalars[j * n + i]) } }
        let t = computeType
        let plainTag: [dnnl_format_tag_t] = [dnnl_a, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd, dnnl_abcde, dnnl_abcdef]
        guard xs.count < plainTag.count, ys.count < plainTag.count else { return false }
        var src = try DNNL.desc(xs, tag: plainTag[xs.count], type: t), wts = try DNNL.any([n, k], type: t)
        var dst = try DNNL.desc(ys, tag: plainTag[ys.count], type: t)
        var bias = biasValues != nil ? try DNNL.plain([n]) : dnnl_memory_desc_t()
        var d = dnnl_inner_product_desc_t()
        try DNNL.check(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &src, &wts, &bias, &dst),
                       "inner product \(step.name)")
        let attr = try DNNL.Attributes(postOps: step.postOps)
        guard let pd = DNNL.primitiveDesc(&d, attr: attr, engine: engine) else { return false }
        guard let wMd = DNNL.query(pd, dnnl_query_weights_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let x = try locate(step.inputs[0], as: src)
        let wLoc = try constant(w, from: DNNL.plain([n, k]), as: wMd)
        var args = [Argument(kind: Arg.src, desc: src, ref: x.ref), Argument(kind: Arg.weights, desc: wMd, ref: wLoc.ref)]
        if let biasValues {
            let bLoc = try constant(biasValues, from: bias, as: bias)
            args.append(Argument(kind: Arg.bias, desc: bias, ref: bLoc.ref))
        }
        let y = try destination(for: step, desc: dst, avoiding: x.ref)
        args.append(Argument(kind: Arg.dst, desc: dst, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
    }
}
