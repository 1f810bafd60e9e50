import CDNNL

/// oneDNN binary primitives (Add/Sub/Mul/Div with broadcasting of the second operand).
extension PlanBuilder {
    mutating func binary(_ step: Step, _ kind: BinaryKind) throws -> Bool {
        guard residualCount(step) == 0 else { return false }
        var (a, b) = (step.inputs[0], step.inputs[1])
        let ys = program.shape(step.outputs[0])
        if program.shape(a) != ys {
            guard program.shape(b) == ys, kind == .add || kind == .mul else { return false }
            swap(&a, &b)
        }
        guard program.constants[a] == nil, let aLoc = location[a] else { return false }
        let bs = program.shape(b)
        let bLoc: Location
        var src1: dnnl_memory_desc_t
        if bs == ys {
            bLoc = try locate(b, as: aLoc.desc)
            src1 = aLoc.desc
        } else {
            let aligned = Array(repeating: 1, count: ys.count - bs.count) + bs
            let plainB = try plainLocation(b)
            src1 = try DNNL.plain(aligned)
            bLoc = Location(ref: plainB.ref, desc: src1)
        }
        var src0 = aLoc.desc, dst = try DNNL.any(ys)
        let alg: dnnl_alg_kind_t = [.add: dnnl_binary_add, .sub: dnnl_binary_sub, .mul: dnnl_binary_mul,
                                    .div: dnnl_binary_div][kind]!
        var d = dnnl_binary_desc_t()
        try DNNL.check(dnnl_binary_desc_init(&d, alg, &src0, &src1, &dst), "binary \(step.name)")
        guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(postOps: step.postOps), engine: engine) else {
            return false
        }
        guard let dstMd = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let out = step.outputs[0]
        let y: Location
        if DNNL.equal(dstMd, aLoc.desc) && isDeadAfterCurrentStep(aLoc.ref) && aLoc.ref != bLoc.ref {
            alias(out, onto: aLoc, desc: dstMd)
            y = Location(ref: aLoc.ref, desc: dstMd)
        } else {
            y = newArena(dstMd, holding: out)
            location[out] = y
        }
        try emit(pd, [Argument(kind: Arg.src, desc: src0, ref: aLoc.ref),
                      Argument(kind: Arg.src1, desc: src1, ref: bLoc.ref),
                      Argument(kind: Arg.dst, desc: dstMd, ref: y.ref)], name: step.name)
        return true
    }
}
