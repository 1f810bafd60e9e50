import CDNNL

/// oneDNN concat in the sources' layouts.
extension PlanBuilder {
    mutating func concat(_ step: Step, axis: Int) throws -> Bool {
        var srcs: [Location] = []
        for v in step.inputs {
            if let l = location[v] {
                srcs.append(l)
            } else if program.isConstant(v) {
                srcs.append(try plainLocation(v))
            } else {
                return false
            }
        }
        var descs = srcs.map(\.desc)
        var pd: OpaquePointer?
        let attr = try DNNL.Attributes()
        guard dnnl_concat_primitive_desc_create(&pd, nil, Int32(descs.count), Int32(axis), &descs, attr.handle, engine)
                == dnnl_success, let pd else { return false }
        guard let dstMd = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let y = newArena(dstMd, holding: step.outputs[0])
        location[step.outputs[0]] = y
        var args = srcs.enumerated().map { Argument(kind: Arg.multipleSrc + Int32($0.offset), desc: $0.element.desc, ref: $0.element.ref) }
        args.append(Argument(kind: Arg.dst, desc: dstMd, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
    }
}
