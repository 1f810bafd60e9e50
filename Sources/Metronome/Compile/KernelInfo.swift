import CDNNL

/// What one compiled kernel of a ``Plan`` is: the graph nodes it computes, how it runs
/// (a oneDNN primitive and the implementation oneDNN chose, a Swift reference kernel, or a
/// copy), its shapes, layouts and geometry.
///
/// Per-layer profiles (`metronome bench --layers`, `metronome profile --layers`) report one
/// of these per kernel next to its time; kernel-level latency predictors use them as features.
/// The implementation name is oneDNN's own (`dnnl_query_impl_info_str`, e.g.
/// `brgconv:avx512_core` or `ref:any`), so a slow reference path is visible by name.
public struct KernelInfo: Codable, Equatable, Sendable {
    /// Position in run order.
    public var index: Int
    /// The kernel's name: the step's node name, `reorder VALUE` or `copy to OUTPUT`.
    public var name: String
    /// The ONNX (graph) nodes this kernel computes: the step's node and every node fused into
    /// it. Empty for layout reorders and copies, which no node asked for.
    public var nodes: [String]
    /// The operator of the step the kernel serves (`Conv`, `Gemm`…); `Reorder` and `Copy` for
    /// the data movement the compiler inserted.
    public var opType: String
    /// `onednn`, `reference` (a Swift kernel on plain layouts) or `copy` (a memcpy).
    public var backend: String
    /// oneDNN's primitive kind (`convolution`, `inner_product`, `pooling`, `eltwise`, `binary`,
    /// `concat`, `reorder`…); `reference` or `copy` otherwise.
    public var primitive: String
    /// oneDNN's implementation name; `swift` for reference kernels and `memcpy` for copies.
    public var implementation: String
    /// Shapes of the kernel's data input (its first), weights (empty when it has none) and output.
    public var srcShape: [Int]
    public var weightsShape: [Int]
    public var dstShape: [Int]
    /// Memory layouts as oneDNN letter strings (`abcd` plain NCHW, `aBcd16b` channel-blocked by
    /// 16), with the data type after a colon when it is not fp32 (`aBcd16b:bf16`).
    public var srcLayout: String
    public var dstLayout: String
    /// Convolution and pooling geometry; empty (and groups 1) for other kernels.
    public var kernelShape: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var groups: Int
    /// The fused post-operations, in order (`relu`, `clip`, `sum`…).
    public var postOps: [String]

    public init(index: Int, name: String, nodes: [String], opType: String, backend: String, primitive: String,
                implementation: String, srcShape: [Int], weightsShape: [Int], dstShape: [Int], srcLayout: String,
                dstLayout: String, kernelShape: [Int], strides: [Int], dilations: [Int], groups: Int, postOps: [String]) {
        self.index = index; self.name = name; self.nodes = nodes; self.opType = opType; self.backend = backend
        self.primitive = primitive; self.implementation = implementation; self.srcShape = srcShape
        self.weightsShape = weightsShape; self.dstShape = dstShape; self.srcLayout = srcLayout; self.dstLayout = dstLayout
        self.kernelShape = kernelShape; self.strides = strides; self.dilations = dilations; self.groups = groups
        self.postOps = postOps
    }

    enum CodingKeys: String, CodingKey {
        case index, name, nodes, opType = "op_type", backend, primitive, implementation, srcShape = "src_shape"
        case weightsShape = "weights_shape", dstShape = "dst_shape", srcLayout = "src_layout", dstLayout = "dst_layout"
        case kernelShape = "kernel_shape", strides, dilations, groups, postOps = "post_ops"
    }

    /// Whether oneDNN picked one of its reference (slow, portable) implementations.
    public var isOneDNNReference: Bool { backend == "onednn" && implementation.hasPrefix("ref") }

    static func describe(_ kernels: [Kernel], steps: [Int?], program: Program) -> [KernelInfo] {
        kernels.enumerated().map { index, kernel in
            let step = steps[index].map { program.steps[$0] }
            var info = KernelInfo(index: index, name: "", nodes: [], opType: "", backend: "", primitive: "",
                                  implementation: "", srcShape: [], weightsShape: [], dstShape: [], srcLayout: "",
                                  dstLayout: "", kernelShape: [], strides: [], dilations: [], groups: 1, postOps: [])
            switch kernel {
            case .primitive(let p, let args, let name):
                info.name = name
                info.backend = "onednn"
                let kind = DNNL.primitiveKind(p)
                info.primitive = kind
                info.implementation = DNNL.implementation(p)
                if kind == "reorder" {
                    info.opType = "Reorder"
                } else if let step {
                    info.apply(step, program: program)
                }
                func desc(_ arg: Int32) -> dnnl_memory_desc_t? { args.first { $0.kind == arg }?.desc }
                if let d = desc(Arg.src) ?? desc(Arg.multipleSrc) {
                    info.srcShape = DNNL.shape(of: d)
                    info.srcLayout = DNNL.layout(of: d)
                }
                if let d = desc(Arg.weights) { info.weightsShape = DNNL.shape(of: d) }
                if let d = desc(Arg.dst) {
                    info.dstShape = DNNL.shape(of: d)
                    info.dstLayout = DNNL.layout(of: d)
                }
            case .reference(let s, _, let inShapes, _, let outShapes, _):
                info.name = s.name
                info.backend = "reference"
                info.primitive = "reference"
                info.implementation = "swift"
                info.apply(s, program: program)
                info.srcShape = inShapes.first ?? []
                info.dstShape = outShapes.first ?? []
                info.srcLayout = DNNL.plainLetters(info.srcShape.count)
                info.dstLayout = DNNL.plainLetters(info.dstShape.count)
            case .copy(_, let to, let bytes):
                if case .output(let i) = to {
                    info.name = "copy to \(program.values[program.outputs[i]].name)"
                    info.dstShape = program.shape(program.outputs[i])
                } else {
                    info.name = "copy for \(step?.name ?? "?")"
                    info.dstShape = [bytes / 4]
                }
                info.srcShape = info.dstShape
                info.opType = "Copy"
                info.backend = "copy"
                info.primitive = "copy"
                info.implementation = "memcpy"
            }
            return info
        }
    }

    /// Fills what the step itself says: nodes, operator, geometry and post-ops.
    private mutating func apply(_ step: Step, program: Program) {
        nodes = [step.name] + step.fusedNodes
        opType = step.opType
        if let w = step.window(in: program) {
            kernelShape = w.kernel; strides = w.strides; dilations = w.dilations; groups = w.groups
        }
        if step.inputs.count > 1, program.isConstant(step.inputs[1]) { weightsShape = program.shape(step.inputs[1]) }
        postOps = step.postOps.map { post in
            switch post {
            case .add: return "sum"
            case .eltwise(let f): return f.postOpName
            }
        }
    }
}

extension DNNL {
    /// oneDNN's name for the kind of primitive `p` is (`convolution`, `reorder`…).
    static func primitiveKind(_ p: OpaquePointer) -> String {
        var pd: const_dnnl_primitive_desc_t?
        guard dnnl_primitive_get_primitive_desc(p, &pd) == dnnl_success, let pd else { return "unknown" }
        var kind = dnnl_undefined_primitive
        guard dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind) == dnnl_success,
              let name = dnnl_prim_kind2str(kind) else { return "unknown" }
        return String(cString: name)
    }

    /// The implementation a primitive descriptor stands for, before any primitive is created.
    static func implementation(descriptor pd: OpaquePointer) -> String {
        var text: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &text) == dnnl_success, let text else {
            return "unknown"
        }
        return String(cString: text)
    }

    /// The oneDNN format tag of a layout written as ``layout(of:)`` writes it, for the layouts
    /// the compiler pairs operands in.
    static func tag(forLayout layout: String) -> dnnl_format_tag_t? {
        ["abcd": dnnl_abcd, "acdb": dnnl_acdb, "aBcd16b": dnnl_aBcd16b, "aBcd8b": dnnl_aBcd8b, "aBcd4b": dnnl_aBcd4b,
         "abc": dnnl_abc, "acb": dnnl_acb, "aBc16b": dnnl_aBc16b, "ab": dnnl_ab][layout]
    }

    /// The implementation oneDNN chose for `p` (`jit:avx512_core`, `brgconv:avx512_core`, `ref:any`…).
    static func implementation(_ p: OpaquePointer) -> String {
        var pd: const_dnnl_primitive_desc_t?
        guard dnnl_primitive_get_primitive_desc(p, &pd) == dnnl_success, let pd else { return "unknown" }
        var text: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &text) == dnnl_success, let text else {
            return "unknown"
        }
        return String(cString: text)
    }

    static func shape(of md: dnnl_memory_desc_t) -> [Int] {
        var dims = md.dims
        let n = Int(md.ndims)
        return withUnsafeBytes(of: &dims) { raw in (0..<n).map { Int(raw.load(fromByteOffset: $0 * 8, as: Int64.self)) } }
    }

    static func plainLetters(_ rank: Int) -> String {
        String("abcdefghijkl".prefix(rank))
    }

    /// The layout as oneDNN's letter notation: outer dimensions ordered by stride, blocked
    /// dimensions in upper case, inner blocks appended (`aBcd16b`). `any` or `other` when
    /// the layout is not a blocked one.
    static func layout(of md: dnnl_memory_desc_t) -> String {
        let n = Int(md.ndims)
        guard n > 0 else { return "" }
        guard md.format_kind == dnnl_blocked else { return md.format_kind == dnnl_format_kind_any ? "any" : "other" }
        let letters = Array("abcdefghijkl")
        let blocking = md.format_desc.blocking
        let count = Int(blocking.inner_nblks)
        func values(_ tuple: dnnl_dims_t, _ k: Int) -> [Int64] {
            var t = tuple
            return withUnsafeBytes(of: &t) { raw in (0..<k).map { raw.load(fromByteOffset: $0 * 8, as: Int64.self) } }
        }
        let strides = values(blocking.strides, n), blocks = values(blocking.inner_blks, count)
        let indices = values(blocking.inner_idxs, count)
        let blocked = Set(indices.map(Int.init))
        let order = (0..<n).sorted { strides[$0] != strides[$1] ? strides[$0] > strides[$1] : $0 < $1 }
        var text = String(order.map { blocked.contains($0) ? Character(letters[$0].uppercased()) : letters[$0] })
        for (b, i) in zip(blocks, indices) { text += "\(b)\(letters[Int(i)])" }
        // The data type, when it is not fp32 (`--precision bf16`): `aBcd16b:bf16`.
        switch md.data_type {
        case dnnl_f32: break
        case dnnl_bf16: text += ":bf16"
        case dnnl_f16: text += ":f16"
        case dnnl_s8: text += ":s8"
        case dnnl_u8: text += ":u8"
        case dnnl_s32: text += ":s32"
        default: text += ":other"
        }
        return text
    }
}
