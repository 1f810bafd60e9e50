import CDNNL

/// oneDNN matmul for MatMul by a constant matrix (a Linear layer applied to every position:
/// ConvNeXt and transformer MLPs on channels-last tensors).
extension PlanBuilder {
    /// The first operand's leading axes flatten into rows — its plain row-major bytes are
    /// already the [M, K] matrix — so one 2-D matmul computes the step; false (the reference
    /// kernel) for a computed second operand or batched second operands.
    mutating func matMul(_ step: Step) throws -> Bool {
        guard step.postOps.isEmpty, step.inputs.count == 2, let w = program.constants[step.inputs[1]], w.shape.count == 2 else {
            return false
        }
        let xs = program.shape(step.inputs[0]), ys = program.shape(step.outputs[0])
        guard xs.count >= 2, xs.last == w.shape[0] else { return false }
        let k = w.shape[0], n = w.shape[1], m = xs.dropLast().reduce(1, *)
        guard m > 0, k > 0, n > 0 else { return false }
        var src = try DNNL.plain([m, k]), wts = try DNNL.any([k, n]), dst = try DNNL.plain([m, n])
        var d = dnnl_matmul_desc_t()
        try DNNL.check(dnnl_matmul_desc_init(&d, &src, &wts, nil, &dst), "matmul \(step.name)")
        guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        guard let wMd = DNNL.query(pd, dnnl_query_weights_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let x = try plainLocation(step.inputs[0])
        let wLoc = try constant(w.scalars, from: DNNL.plain([k, n]), as: wMd)
        let y = newArena(try DNNL.plain(ys), holding: step.outputs[0])
        location[step.outputs[0]] = y
        try emit(pd, [Argument(kind: Arg.src, desc: src, ref: x.ref), Argument(kind: Arg.weights, desc: wMd, ref: wLoc.ref),
                      Argument(kind: Arg.dst, desc: dst, ref: y.ref)], name: step.name)
        return true
    }
}
