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
        guard program.constants[a] == nil, let located = location[a] else { return false }
        let bs = program.shape(b)
        let alg: dnnl_alg_kind_t = [.add: dnnl_binary_add, .sub: dnnl_binary_sub, .mul: dnnl_binary_mul,
                                    .div: dnnl_binary_div][kind]!
        let attr = try DNNL.Attributes(postOps: step.postOps)
        /// A primitive descriptor for these operand layouts, or nil when oneDNN has none.
        func descriptor(_ src0: dnnl_memory_desc_t, _ src1: dnnl_memory_desc_t) throws -> OpaquePointer? {
            var s0 = src0, s1 = src1, dst = try DNNL.any(ys)
            var d = dnnl_binary_desc_t()
            try DNNL.check(dnnl_binary_desc_init(&d, alg, &s0, &s1, &dst), "binary \(step.name)")
            return DNNL.primitiveDesc(&d, attr: attr, engine: engine)
        }
        var aLoc = located
        let bLoc: Location
        var src1: dnnl_memory_desc_t
        var chosen: OpaquePointer?
        if bs == ys {
            bLoc = try locate(b, as: aLoc.desc)
            src1 = aLoc.desc
            chosen = try descriptor(aLoc.desc, src1)
        } else {
            // A broadcast operand (squeeze-excite's per-channel scale): oneDNN 2.6 falls back to
            // its reference implementation (`ref:any`, ~30× slower) for a plain broadcast operand
            // beside a channel-blocked one. Try, in order: the operand in the blocked layout of
            // the other; both channels-last; the plain operand. The first that is not `ref:` wins.
            let aligned = Array(repeating: 1, count: ys.count - bs.count) + bs
            let plain = try DNNL.plain(aligned)
            var candidates: [(dnnl_memory_desc_t, dnnl_memory_desc_t)] = []
            // Only an operand with every channel of the other takes its channel-blocked layout:
            // oneDNN 2.6's AVX2 binary kernel, given an operand broadcast along the channels
            // (a scalar, a [1,1,H,W] map) in nChw8c, computes the wrong sum for a channel count
            // that is not a multiple of the block (measured: off by up to 3.6 at C = 5 and 12).
            if ys.count >= 2, aligned[1] == ys[1],
               let tag = DNNL.tag(forLayout: DNNL.layout(of: aLoc.desc)), let blocked = try? DNNL.desc(aligned, tag: tag) {
                candidates.append((aLoc.desc, blocked))
            }
            if ys.count == 4, let nhwc = try? DNNL.desc(ys, tag: dnnl_acdb), let b1 = try? DNNL.desc(aligned, tag: dnnl_acdb) {
                candidates.append((nhwc, b1))
            }
            candidates.append((aLoc.desc, plain))
            var pick = candidates.count - 1
            var pds: [OpaquePointer?] = []
            for (i, (s0, s1)) in candidates.enumerated() {
                let pd = try descriptor(s0, s1)
                pds.append(pd)
                if let pd, !DNNL.implementation(descriptor: pd).hasPrefix("ref") { pick = i; break }
            }
            for (i, pd) in pds.enumerated() where i != pick { if let pd { dnnl_primitive_desc_destroy(pd) } }
            chosen = pick < pds.count ? pds[pick] : try descriptor(candidates[pick].0, candidates[pick].1)
            if !DNNL.equal(candidates[pick].0, aLoc.desc) { aLoc = try locate(a, as: candidates[pick].0) }
            src1 = candidates[pick].1
            // The operand's bytes viewed with the leading 1s of the broadcast, then in src1's layout.
            let view = Location(ref: try plainLocation(b).ref, desc: plain)
            if DNNL.equal(src1, plain) {
                bLoc = view
            } else if let t = program.constants[b] {
                bLoc = try constant(t.scalars, from: plain, as: src1)
            } else {
                let target = newArena(src1, holding: b)
                try emitReorder(from: view, to: target, name: "reorder \(program.values[b].name)")
                bLoc = target
            }
        }
        let src0 = aLoc.desc
        guard let pd = chosen else { return false }
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
