import CDNNL

/// oneDNN reduction primitives (ReduceMean/Max/Min/Sum/L2/L1/SumSquare/Prod) on plain layouts.
extension PlanBuilder {
    mutating func reduction(_ step: Step, _ kind: ReduceKind, axes: [Int]) throws -> Bool {
        let xs = program.shape(step.inputs[0]), ys = program.shape(step.outputs[0])
        // Empty tensors run the reference kernel, which writes the empty reduction's value
        // (0 for sums, ±infinity for Max and Min).
        guard !xs.isEmpty, xs.count <= 6, !xs.contains(0) else { return false }
        var kept = xs
        for a in axes { kept[a] = 1 }
        // oneDNN rejects a "reduction" that changes nothing (every reduced axis has size 1).
        guard kept != xs else { return false }
        let x = try plainLocation(step.inputs[0])
        var src = x.desc, dst = try DNNL.plain(kept)
        guard let (alg, p) = kind.oneDNN else { return false }
        var d = dnnl_reduction_desc_t()
        guard dnnl_reduction_desc_init(&d, alg, &src, &dst, p, 0) == dnnl_success,
              let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        let out = step.outputs[0]
        let y = newArena(dst, holding: out)
        // The kept dimensions in order: the same bytes with or without keepdims.
        location[out] = Location(ref: y.ref, desc: try DNNL.plain(ys))
        try emit(pd, [Argument(kind: Arg.src, desc: src, ref: x.ref), Argument(kind: Arg.dst, desc: dst, ref: y.ref)],
                 name: step.name)
        return true
    }
}
