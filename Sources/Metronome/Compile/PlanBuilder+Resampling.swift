import CDNNL

/// oneDNN resampling (nearest, linear) on whatever layout the input is in.
extension PlanBuilder {
    mutating func resampling(_ step: Step, alg: dnnl_alg_kind_t) throws -> Bool {
        guard step.postOps.isEmpty, let x = location[step.inputs[0]] else { return false }
        let ys = program.shape(step.outputs[0])
        var src = x.desc, dst = try DNNL.any(ys, type: x.desc.data_type)
        var d = dnnl_resampling_desc_t()
        // No factors: oneDNN derives them from the source and destination extents.
        try DNNL.check(dnnl_resampling_forward_desc_init(&d, dnnl_forward_inference, alg, nil, &src, &dst),
                       "resampling \(step.name)")
        guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        guard let dstMd = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let y = newArena(dstMd, holding: step.outputs[0])
        location[step.outputs[0]] = y
        try emit(pd, [Argument(kind: Arg.src, desc: src, ref: x.ref), Argument(kind: Arg.dst, desc: dstMd, ref: y.ref)],
                 name: step.name)
        return true
    }
}
