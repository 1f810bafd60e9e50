import CDNNL

/// oneDNN pooling (max, average with or without padding, global average).
extension PlanBuilder {
    mutating func pool(_ step: Step, _ a: PoolAttributes, alg: dnnl_alg_kind_t) throws -> Bool {
        let xs = program.shape(step.inputs[0]), ys = program.shape(step.outputs[0])
        guard let x = location[step.inputs[0]] else { return false }
        // oneDNN sizes outputs with the floor rule; ceil mode becomes extra end padding.
        let rank = a.kernel.count
        let padR = (0..<rank).map { (i: Int) -> Int in
            let extent: Int = (a.kernel[i] - 1) * a.dilations[i] + 1
            return (ys[2 + i] - 1) * a.strides[i] + extent - xs[2 + i] - a.pads[i]
        }
        var src = x.desc, dst = try DNNL.any(ys, type: x.desc.data_type)
        var d = dnnl_pooling_v2_desc_t()
        try DNNL.check(dnnl_pooling_v2_forward_desc_init(
            &d, dnnl_forward_inference, alg, &src, &dst, DNNL.dims(a.strides), DNNL.dims(a.kernel),
            DNNL.dims(a.dilations.map { $0 - 1 }), DNNL.dims(Array(a.pads[..<rank])),
            DNNL.dims((0..<rank).map { max(padR[$0], a.pads[rank + $0]) })), "pooling \(step.name)")
        guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        return try emitIntoNewOutput(pd, source: src, at: x, step: step)
    }
}
