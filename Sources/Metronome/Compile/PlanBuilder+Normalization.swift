import CDNNL

/// oneDNN layer normalization over the trailing axes, seen as a 2-D `[rows, row]` tensor,
/// with constant scale and shift expanded to one row (`use_scaleshift`).
extension PlanBuilder {
    mutating func layerNormalization(_ step: Step, axis: Int, epsilon: Float, scale: [Float], shift: [Float]) throws -> Bool {
        let xs = program.shape(step.inputs[0])
        let inner = xs[axis...].reduce(1, *), outer = xs[..<axis].reduce(1, *)
        guard inner > 0, outer > 0, scale.count == inner, shift.count == inner else { return false }
        let x = try plainLocation(step.inputs[0])
        var data = try DNNL.plain([outer, inner])
        var d = dnnl_layer_normalization_desc_t()
        let flags = UInt32(dnnl_use_scaleshift.rawValue)
        guard dnnl_layer_normalization_forward_desc_init(&d, dnnl_forward_inference, &data, nil, epsilon, flags) == dnnl_success,
              let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        guard let wMd = DNNL.query(pd, dnnl_query_weights_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let w = try constant(scale + shift, from: DNNL.plain([2, inner]), as: wMd)
        let out = step.outputs[0]
        let y = newArena(data, holding: out)
        location[out] = Location(ref: y.ref, desc: try DNNL.plain(program.shape(out)))
        try emit(pd, [Argument(kind: Arg.src, desc: data, ref: x.ref),
                      Argument(kind: Arg.weights, desc: wMd, ref: w.ref),
                      Argument(kind: Arg.dst, desc: data, ref: y.ref)], name: step.name)
        return true
    }
}
