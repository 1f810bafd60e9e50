import CDNNL

/// oneDNN local response normalization across channels (LRN).
extension PlanBuilder {
    /// In the layout the input has.
    mutating func lrn(_ step: Step, size: Int, alpha: Float, beta: Float, bias: Float) throws -> Bool {
        guard let x = location[step.inputs[0]], x.desc.data_type == dnnl_f32 else { return false }
        var data = x.desc
        var d = dnnl_lrn_desc_t()
        guard dnnl_lrn_forward_desc_init(&d, dnnl_forward_inference, dnnl_lrn_across_channels, &data, Int64(size),
                                         alpha, beta, bias) == dnnl_success,
              let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        guard let dst = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let y = newArena(dst, holding: step.outputs[0])
        location[step.outputs[0]] = y
        try emit(pd, [Argument(kind: Arg.src, desc: data, ref: x.ref), Argument(kind: Arg.dst, desc: dst, ref: y.ref)],
                 name: step.name)
        return true
    }
}
