import CDNNL

/// A oneDNN primitive with a memory object per argument, bound to caller-owned pointers on
/// each run: for training, whose buffers live outside any plan. Its scratchpad is
/// user-managed, so the caller places it (and counts it).
final class DNNLPrimitive {
    let primitive: OpaquePointer
    /// The implementation oneDNN chose (`jit:avx512_core`, `gemm:jit`, …).
    let implementation: String
    let scratchpadBytes: Int
    private let memories: [(arg: Int32, memory: OpaquePointer)]

    /// Takes ownership of `pd`; `args` are the memory descriptors of every argument but
    /// the scratchpad.
    init(_ pd: OpaquePointer, args: [(Int32, dnnl_memory_desc_t)], engine: OpaquePointer, name: String) throws {
        defer { dnnl_primitive_desc_destroy(pd) }
        var all = args
        var scratch = 0
        if let sp = DNNL.query(pd, dnnl_query_scratchpad_md), DNNL.size(sp) > 0 {
            scratch = DNNL.size(sp)
            all.append((Arg.scratchpad, sp))
        }
        var info: UnsafePointer<CChar>?
        implementation = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success && info != nil
            ? String(cString: info!) : "unknown"
        var made: [(Int32, OpaquePointer)] = []
        for (arg, desc) in all {
            var md = desc
            var m: OpaquePointer?
            let status = dnnl_memory_create(&m, &md, engine, nil)
            guard status == dnnl_success, let m else {
                made.forEach { dnnl_memory_destroy($0.1) }
                throw MetronomeError.backend("memory for \(name) failed: \(DNNL.name(of: status))")
            }
            made.append((arg, m))
        }
        var prim: OpaquePointer?
        let status = dnnl_primitive_create(&prim, pd)
        guard status == dnnl_success, let prim else {
            made.forEach { dnnl_memory_destroy($0.1) }
            throw MetronomeError.backend("primitive creation for \(name) failed: \(DNNL.name(of: status))")
        }
        primitive = prim
        memories = made
        scratchpadBytes = scratch
    }

    /// A reorder between two layouts; with `accumulate`, it adds into the destination.
    static func reorder(from: dnnl_memory_desc_t, to: dnnl_memory_desc_t, accumulate: Bool, engine: OpaquePointer,
                        name: String) throws -> DNNLPrimitive {
        var src = from, dst = to
        let attr = try DNNL.Attributes(accumulate: accumulate)
        var pd: OpaquePointer?
        try DNNL.check(dnnl_reorder_primitive_desc_create(&pd, &src, engine, &dst, engine, attr.handle), name)
        guard let pd else { throw MetronomeError.backend("\(name): no primitive descriptor") }
        return try DNNLPrimitive(pd, args: [(Arg.src, from), (Arg.dst, to)], engine: engine, name: name)
    }

    deinit {
        memories.forEach { dnnl_memory_destroy($0.memory) }
        dnnl_primitive_destroy(primitive)
    }

    /// Runs on `stream` with every argument bound (`bindings` in any order; the scratchpad
    /// at `scratchpad`), and waits for it.
    func run(_ bindings: [Int32: UnsafeRawPointer], scratchpad: UnsafeMutableRawPointer?, stream: OpaquePointer, name: String) throws {
        var args: [dnnl_exec_arg_t] = []
        args.reserveCapacity(memories.count)
        for (arg, m) in memories {
            let pointer = arg == Arg.scratchpad ? UnsafeRawPointer(scratchpad) : bindings[arg]
            guard let pointer else { throw MetronomeError.backend("\(name): argument \(arg) is not bound") }
            try DNNL.check(dnnl_memory_set_data_handle_v2(m, UnsafeMutableRawPointer(mutating: pointer), stream), "\(name) binding")
            args.append(dnnl_exec_arg_t(arg: arg, memory: m))
        }
        let status = args.withUnsafeBufferPointer { dnnl_primitive_execute(primitive, stream, Int32($0.count), $0.baseAddress) }
        try DNNL.check(status, name)
        try DNNL.check(dnnl_stream_wait(stream), name)
    }
}
