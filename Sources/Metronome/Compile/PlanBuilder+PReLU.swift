import CDNNL

/// oneDNN PReLU with a constant slope broadcast to the input (per channel, scalar or full).
extension PlanBuilder {
    mutating func prelu(_ step: Step, slope: Tensor) throws -> Bool {
        let xs = program.shape(step.inputs[0])
        guard !xs.isEmpty, slope.rank <= xs.count, xs == program.shape(step.outputs[0]) else { return false }
        let aligned = Array(repeating: 1, count: xs.count - slope.rank) + slope.shape
        let x = try plainLocation(step.inputs[0])
        var src = x.desc, weights = try DNNL.plain(aligned)
        var d = dnnl_prelu_desc_t()
        guard dnnl_prelu_forward_desc_init(&d, dnnl_forward_inference, &src, &weights) == dnnl_success,
              let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        guard let wMd = DNNL.query(pd, dnnl_query_weights_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let w = try constant(slope.scalars, from: weights, as: wMd)
        let out = step.outputs[0]
        let y = newArena(src, holding: out)
        location[out] = y
        try emit(pd, [Argument(kind: Arg.src, desc: src, ref: x.ref),
                      Argument(kind: Arg.weights, desc: wMd, ref: w.ref),
                      Argument(kind: Arg.dst, desc: src, ref: y.ref)], name: step.name)
        return true
    }
}
