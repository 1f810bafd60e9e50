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
        return try emitIntoNewOutput(pd, source: src, at: x, step: step)
    }
}
