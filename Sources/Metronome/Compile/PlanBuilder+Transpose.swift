import CDNNL

extension PlanBuilder {
    /// `Transpose` as one reorder: the source is the input's plain bytes described with the
    /// output's dimensions and the input's strides taken in permutation order, the destination
    /// the output's plain layout; oneDNN's reorder then copies element (i₀, …, iₙ) of the
    /// output from input element (i_{perm⁻¹}…), which is what a transpose is.
    mutating func transpose(_ step: Step, perm: [Int]) throws -> Bool {
        let xs = program.shape(step.inputs[0]), ys = program.shape(step.outputs[0])
        guard xs.count == perm.count, (1...6).contains(xs.count), xs.allSatisfy({ $0 > 0 }) else { return false }
        let strides = ReferenceKernels.rowMajorStrides(xs)
        var src = dnnl_memory_desc_t()
        let dims = DNNL.dims(ys)
        let permuted = perm.map { Int64(strides[$0]) }
        try DNNL.check(dnnl_memory_desc_init_by_strides(&src, Int32(dims.count), dims, dnnl_f32, permuted),
                       "transpose source of '\(step.name)'")
        let x = try plainLocation(step.inputs[0])
        let out = newArena(try DNNL.plain(ys), holding: step.outputs[0])
        location[step.outputs[0]] = out
        try emitReorder(from: Location(ref: x.ref, desc: src), to: out, name: step.name)
        return true
    }
}
