import CDNNL

/// The oneDNN engine and stream that training's primitives run on, and the one workspace
/// they share for what a step needs only while it runs (blocked copies of an output and of
/// gradients, primitive scratchpads). The trainer runs one step at a time, so the largest
/// step's need is enough for all of them; it grows while the first training step runs and
/// never after.
public final class TrainingEngine {
    let engine: OpaquePointer
    let stream: OpaquePointer
    private var workspace: UnsafeMutableRawPointer?
    /// Bytes of the shared workspace so far.
    public private(set) var workspaceBytes = 0

    public init() throws {
        var e: OpaquePointer?
        try DNNL.check(dnnl_engine_create(&e, dnnl_cpu, 0), "CPU engine creation")
        guard let e else { throw MetronomeError.backend("CPU engine creation returned nothing") }
        var s: OpaquePointer?
        guard dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue) == dnnl_success, let s else {
            dnnl_engine_destroy(e)
            throw MetronomeError.backend("stream creation failed")
        }
        engine = e
        stream = s
    }

    deinit {
        workspace?.deallocate()
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    /// The workspace, at least `bytes` long and 64-byte aligned.
    func workspace(_ bytes: Int) -> UnsafeMutableRawPointer {
        if let workspace, bytes <= workspaceBytes { return workspace }
        workspace?.deallocate()
        let w = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        workspace = w
        workspaceBytes = max(bytes, 64)
        return w
    }

    func wait() throws { try DNNL.check(dnnl_stream_wait(stream), "stream wait") }
}
