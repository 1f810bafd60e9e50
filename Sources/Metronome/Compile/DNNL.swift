import CDNNL

/// Thin helpers over oneDNN's C API: status checking, memory descriptors, post-ops.
enum DNNL {
    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws {
        guard status == dnnl_success else {
            throw MetronomeError.backend("\(what()) failed: \(name(of: status))")
        }
    }

    static func name(of status: dnnl_status_t) -> String {
        switch status {
        case dnnl_out_of_memory: return "out of memory"
        case dnnl_invalid_arguments: return "invalid arguments"
        case dnnl_unimplemented: return "no implementation for these shapes and layouts"
        case dnnl_runtime_error: return "runtime error"
        default: return "status \(status.rawValue)"
        }
    }

    static func dims(_ shape: [Int]) -> [Int64] { shape.map(Int64.init) }

    /// The row-major (NCHW for 4-D) descriptor of `shape`.
    static func plain(_ shape: [Int]) throws -> dnnl_memory_desc_t {
        let tags: [dnnl_format_tag_t] = [dnnl_a, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd, dnnl_abcde, dnnl_abcdef]
        guard shape.count < tags.count else {
            throw MetronomeError.backend("rank \(shape.count) tensors are not supported")
        }
        return try desc(shape.isEmpty ? [1] : shape, tag: tags[max(shape.count, 1)])
    }

    static func desc(_ shape: [Int], tag: dnnl_format_tag_t, type: dnnl_data_type_t = dnnl_f32) throws -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let d = dims(shape)
        try check(dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, type, tag), "memory descriptor \(shape)")
        return md
    }

    /// A descriptor that lets the primitive choose its preferred layout.
    static func any(_ shape: [Int], type: dnnl_data_type_t = dnnl_f32) throws -> dnnl_memory_desc_t {
        try desc(shape, tag: dnnl_format_tag_any, type: type)
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var a = a, b = b
        return dnnl_memory_desc_equal(&a, &b) != 0
    }

    static func size(_ md: dnnl_memory_desc_t) -> Int {
        var md = md
        return Int(dnnl_memory_desc_get_size(&md))
    }

    static func query(_ pd: OpaquePointer, _ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t? {
        guard let p = dnnl_primitive_desc_query_md(pd, what, index) else { return nil }
        return p.pointee
    }

    /// Whether `md` is the plain row-major layout of its dimensions.
    static func isPlain(_ md: dnnl_memory_desc_t, shape: [Int]) -> Bool {
        guard let p = try? plain(shape) else { return false }
        return equal(md, p)
    }

    /// An attribute with a user-managed scratchpad (so concurrent plans never share one)
    /// and the given post-ops. `.add` (or `accumulate`, for a primitive with no residual
    /// value, such as a reorder adding into a gradient) appends an accumulate-into-destination step.
    final class Attributes {
        let handle: OpaquePointer

        init(eltwise: [Eltwise] = [], postOps: [PostOp]? = nil, accumulate: Bool = false) throws {
            var attr: OpaquePointer?
            try check(dnnl_primitive_attr_create(&attr), "attribute creation")
            guard let attr else { throw MetronomeError.backend("attribute creation returned nothing") }
            handle = attr
            try check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
            let ops = postOps ?? eltwise.map { PostOp.eltwise($0) }
            guard !ops.isEmpty || accumulate else { return }
            var po: OpaquePointer?
            try check(dnnl_post_ops_create(&po), "post-op creation")
            guard let po else { throw MetronomeError.backend("post-op creation returned nothing") }
            defer { dnnl_post_ops_destroy(po) }
            for op in ops {
                switch op {
                case .eltwise(let f):
                    // The fusion pass only fuses functions oneDNN computes
                    // (Operator.fusedActivation); anything else would be silently dropped.
                    guard !f.oneDNNAlgorithms.isEmpty else {
                        throw MetronomeError.backend("internal error: \(f.postOpName) has no oneDNN post-op")
                    }
                    for (alg, a, b) in f.oneDNNAlgorithms {
                        try check(dnnl_post_ops_append_eltwise(po, 1, alg, a, b), "eltwise post-op")
                    }
                case .add:
                    try check(dnnl_post_ops_append_sum(po, 1), "sum post-op")
                }
            }
            if accumulate { try check(dnnl_post_ops_append_sum(po, 1), "sum post-op") }
            try check(dnnl_primitive_attr_set_post_ops(attr, po), "setting post-ops")
        }

        deinit { dnnl_primitive_attr_destroy(handle) }
    }

    /// Creates a primitive descriptor, or returns nil when oneDNN has no implementation
    /// (so the caller can fall back to a reference kernel).
    static func primitiveDesc(_ opDesc: UnsafeRawPointer, attr: Attributes, engine: OpaquePointer) -> OpaquePointer? {
        var pd: OpaquePointer?
        guard dnnl_primitive_desc_create(&pd, opDesc, attr.handle, engine, nil) == dnnl_success else { return nil }
        return pd
    }
}
