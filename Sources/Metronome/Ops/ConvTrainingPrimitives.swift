import CDNNL

/// One 2-D training convolution through oneDNN: the forward-training, backward-data and
/// backward-weights primitives, each in the layouts oneDNN prefers for the shapes (blocked
/// `nChw16c` and the like on AVX-512), with reorders from and to the trainer's plain NCHW
/// buffers around them. The blocked kernels ran ResNet-8's convolutions 2.1× faster than
/// im2col + sgemm on plain layouts did, reorders included.
///
/// Kept between a step's forward and its backward: the blocked copy of the input (for the
/// weight gradient) and of the weights. Everything else a call needs lives in the engine's
/// shared workspace. Gradients are *added* into the trainer's buffers (reorders with a sum
/// post-op), since a value read by several steps sums their gradients.
final class ConvTrainingPrimitives {
    /// OpenMP threads when the primitives were made: oneDNN sizes its work split and
    /// scratchpads by them, so a different count needs new primitives.
    let threads: Int
    let engine: TrainingEngine
    private let name: String
    private let outputChannels: Int
    private let forward: DNNLPrimitive, backwardData: DNNLPrimitive, backwardWeights: DNNLPrimitive
    /// Reorders (nil where the layouts already agree): plain input → forward's input,
    /// plain weights → forward's weights, forward's output → plain output, plain output
    /// gradient → each backward's, plain input → backward-weights' input when it differs
    /// from both, plain weights → backward-data's, and the two accumulating ones back.
    private let sourceIn, weightsIn, outputOut, weightsGradientIn, dataGradientIn, weightsSourceIn, dataWeightsIn: DNNLPrimitive?
    private let sourceGradientOut, weightsGradientOut: DNNLPrimitive
    /// Whether backward-weights reads the forward's blocked input copy (else the plain
    /// input or `weightsSourceIn`'s), and backward-data the forward's weights copy.
    private let weightsSourceIsCopy, dataWeightsIsCopy, dataGradientIsWeightsGradient: Bool
    /// The blocked copies, allocated by the first forward (planning makes primitives only).
    private var sourceCopy: UnsafeMutableRawPointer?, weightsCopy: UnsafeMutableRawPointer?
    private let sourceBytes: Int, weightBytes: Int
    /// Bytes kept from forward to backward (the two copies, once a forward has run).
    let persistentBytes: Int
    /// Bytes of the shared workspace a forward or a backward call uses.
    let workspaceBytes: Int
    private let forwardLayout: Layout, backwardLayout: Layout
    /// The forward's input and output layouts in oneDNN's letters (`aBcd16b`, `abcd`).
    let sourceLayout: String, outputLayout: String

    /// What a call places in the shared workspace.
    enum Region: Hashable {
        case output, scratchpad, weightsGradient, dataGradient, weightsSource, dataWeights, diffWeights, diffBias, diffSource
    }

    /// Offsets of regions in the workspace, 64-byte aligned, in the order they are added.
    struct Layout {
        private(set) var offsets: [Region: Int] = [:]
        private(set) var total = 0
        mutating func add(_ region: Region, _ bytes: Int) {
            offsets[region] = total
            total += (bytes + 63) / 64 * 64
        }
        func pointer(_ region: Region, in base: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
            offsets[region].map { base + $0 }
        }
    }

    init(name: String, _ xs: [Int], _ ws: [Int], _ ys: [Int], _ a: ConvAttributes, hasBias: Bool, engine: TrainingEngine) throws {
        guard xs.count == 4, ws.count == 4, ys.count == 4, a.kernel.count == 2 else {
            throw MetronomeError.node(node: name, op: "Conv", message: "oneDNN training convolutions are 2-D")
        }
        self.name = name
        self.engine = engine
        threads = ParallelFor.threads
        outputChannels = ws[0]
        let e = engine.engine
        let g = a.groups
        let wdims = g > 1 ? [g, ws[0] / g] + Array(ws[1...]) : ws
        let plainX = try DNNL.plain(xs), plainY = try DNNL.plain(ys)
        let plainW = try DNNL.desc(wdims, tag: g > 1 ? dnnl_goihw : dnnl_oihw)
        var bias = hasBias ? try DNNL.plain([ws[0]]) : dnnl_memory_desc_t()
        let strides = DNNL.dims(a.strides), dil = DNNL.dims(a.dilations.map { $0 - 1 })
        let pl = DNNL.dims(Array(a.pads[..<2])), pr = DNNL.dims(Array(a.pads[2...]))
        let attr = try DNNL.Attributes()
        func create(_ desc: inout dnnl_convolution_desc_t, hint: OpaquePointer?, _ what: String) throws -> OpaquePointer {
            var pd: OpaquePointer?
            try DNNL.check(dnnl_primitive_desc_create(&pd, &desc, attr.handle, e, hint), "\(what) of convolution '\(name)'")
            guard let pd else { throw MetronomeError.node(node: name, op: "Conv", message: "oneDNN gave no \(what)") }
            return pd
        }
        func md(_ pd: OpaquePointer, _ q: dnnl_query_t) throws -> dnnl_memory_desc_t {
            guard let d = DNNL.query(pd, q) else { throw MetronomeError.node(node: name, op: "Conv", message: "oneDNN reported no layout") }
            return d
        }

        var src = try DNNL.any(xs), wts = try DNNL.any(wdims), dst = try DNNL.any(ys)
        var fd = dnnl_convolution_desc_t()
        try DNNL.check(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src, &wts,
                                                                  &bias, &dst, strides, dil, pl, pr),
                       "convolution '\(name)'")
        let fpd = try create(&fd, hint: nil, "forward")
        // The forward descriptor is the backward ones' hint, so it lives until they exist.
        let fSrc: dnnl_memory_desc_t, fW: dnnl_memory_desc_t, fDst: dnnl_memory_desc_t
        let bdpd: OpaquePointer
        let bwpd: OpaquePointer
        do {
            (fSrc, fW, fDst) = (try md(fpd, dnnl_query_src_md), try md(fpd, dnnl_query_weights_md), try md(fpd, dnnl_query_dst_md))
            var bdd = dnnl_convolution_desc_t()
            var dsrc = try DNNL.any(xs), bwts = try DNNL.any(wdims), ddst = try DNNL.any(ys)
            try DNNL.check(dnnl_dilated_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &dsrc, &bwts, &ddst,
                                                                            strides, dil, pl, pr), "convolution '\(name)'")
            bdpd = try create(&bdd, hint: fpd, "backward-data")
            var bwd = dnnl_convolution_desc_t()
            var wsrc = try DNNL.any(xs), dwts = try DNNL.any(wdims), wddst = try DNNL.any(ys)
            var dbias = bias
            try DNNL.check(dnnl_dilated_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &wsrc, &dwts,
                                                                               &dbias, &wddst, strides, dil, pl, pr),
                           "convolution '\(name)'")
            do { bwpd = try create(&bwd, hint: fpd, "backward-weights") } catch { dnnl_primitive_desc_destroy(bdpd); throw error }
        } catch {
            dnnl_primitive_desc_destroy(fpd)
            throw error
        }
        let dSrc = try md(bdpd, dnnl_query_diff_src_md), dW = try md(bdpd, dnnl_query_weights_md), dDst = try md(bdpd, dnnl_query_diff_dst_md)
        let wSrc = try md(bwpd, dnnl_query_src_md), wDW = try md(bwpd, dnnl_query_diff_weights_md), wDst = try md(bwpd, dnnl_query_diff_dst_md)

        sourceLayout = DNNL.layout(of: fSrc)
        outputLayout = DNNL.layout(of: fDst)
        var fArgs = [(Arg.src, fSrc), (Arg.weights, fW), (Arg.dst, fDst)]
        if hasBias { fArgs.append((Arg.bias, bias)) }
        // Each DNNLPrimitive takes its descriptor; the ones not yet taken are released on failure.
        do { forward = try DNNLPrimitive(fpd, args: fArgs, engine: e, name: "\(name) forward") } catch {
            dnnl_primitive_desc_destroy(bdpd)
            dnnl_primitive_desc_destroy(bwpd)
            throw error
        }
        do {
            backwardData = try DNNLPrimitive(bdpd, args: [(Arg.diffDst, dDst), (Arg.weights, dW), (Arg.diffSrc, dSrc)], engine: e,
                                             name: "\(name) backward-data")
        } catch {
            dnnl_primitive_desc_destroy(bwpd)
            throw error
        }
        var wArgs = [(Arg.src, wSrc), (Arg.diffDst, wDst), (Arg.diffWeights, wDW)]
        if hasBias { wArgs.append((Arg.diffBias, bias)) }
        backwardWeights = try DNNLPrimitive(bwpd, args: wArgs, engine: e, name: "\(name) backward-weights")

        func reorder(_ from: dnnl_memory_desc_t, _ to: dnnl_memory_desc_t, _ what: String, accumulate: Bool = false) throws -> DNNLPrimitive? {
            if !accumulate && DNNL.equal(from, to) { return nil }
            return try DNNLPrimitive.reorder(from: from, to: to, accumulate: accumulate, engine: e, name: "\(name) \(what) reorder")
        }
        sourceIn = try reorder(plainX, fSrc, "input")
        weightsIn = try reorder(plainW, fW, "weights")
        outputOut = try reorder(fDst, plainY, "output")
        weightsGradientIn = try reorder(plainY, wDst, "output-gradient")
        dataGradientIsWeightsGradient = !DNNL.equal(dDst, plainY) && DNNL.equal(dDst, wDst)
        dataGradientIn = dataGradientIsWeightsGradient ? nil : try reorder(plainY, dDst, "output-gradient")
        weightsSourceIsCopy = sourceIn != nil && DNNL.equal(wSrc, fSrc)
        weightsSourceIn = weightsSourceIsCopy ? nil : try reorder(plainX, wSrc, "input")
        dataWeightsIsCopy = weightsIn != nil && DNNL.equal(dW, fW)
        dataWeightsIn = dataWeightsIsCopy ? nil : try reorder(plainW, dW, "weights")
        sourceGradientOut = try reorder(dSrc, plainX, "input-gradient", accumulate: true)!
        weightsGradientOut = try reorder(wDW, plainW, "weight-gradient", accumulate: true)!

        sourceBytes = sourceIn == nil ? 0 : DNNL.size(fSrc)
        weightBytes = weightsIn == nil ? 0 : DNNL.size(fW)
        persistentBytes = sourceBytes + weightBytes

        func scratch(_ ps: [DNNLPrimitive?]) -> Int { ps.compactMap { $0?.scratchpadBytes }.max() ?? 0 }
        var f = Layout()
        if outputOut != nil { f.add(.output, DNNL.size(fDst)) }
        f.add(.scratchpad, scratch([forward, sourceIn, weightsIn, outputOut]))
        var b = Layout()
        if weightsGradientIn != nil { b.add(.weightsGradient, DNNL.size(wDst)) }
        if dataGradientIn != nil { b.add(.dataGradient, DNNL.size(dDst)) }
        if weightsSourceIn != nil { b.add(.weightsSource, DNNL.size(wSrc)) }
        if dataWeightsIn != nil { b.add(.dataWeights, DNNL.size(dW)) }
        b.add(.diffWeights, DNNL.size(wDW))
        if hasBias { b.add(.diffBias, 4 * ws[0]) }
        b.add(.diffSource, DNNL.size(dSrc))
        b.add(.scratchpad, scratch([backwardData, backwardWeights, weightsGradientIn, dataGradientIn, weightsSourceIn, dataWeightsIn,
                                     sourceGradientOut, weightsGradientOut]))
        forwardLayout = f
        backwardLayout = b
        workspaceBytes = max(f.total, b.total)
    }

    deinit {
        sourceCopy?.deallocate()
        weightsCopy?.deallocate()
    }

    /// The implementations oneDNN chose, forward / backward-data / backward-weights.
    var implementations: [String] { [forward.implementation, backwardData.implementation, backwardWeights.implementation] }

    func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) throws {
        if sourceCopy == nil && sourceBytes > 0 { sourceCopy = UnsafeMutableRawPointer.allocate(byteCount: sourceBytes, alignment: 64) }
        if weightsCopy == nil && weightBytes > 0 { weightsCopy = UnsafeMutableRawPointer.allocate(byteCount: weightBytes, alignment: 64) }
        let base = engine.workspace(workspaceBytes), s = engine.stream
        let scratchpad = forwardLayout.pointer(.scratchpad, in: base)
        let source = try reordered(UnsafeRawPointer(x), by: sourceIn, into: sourceCopy, scratchpad: scratchpad)
        let weights = try reordered(UnsafeRawPointer(w), by: weightsIn, into: weightsCopy, scratchpad: scratchpad)
        let output = forwardLayout.pointer(.output, in: base) ?? UnsafeMutableRawPointer(y)
        var args: [Int32: UnsafeRawPointer] = [Arg.src: source, Arg.weights: weights, Arg.dst: UnsafeRawPointer(output)]
        if let bias { args[Arg.bias] = UnsafeRawPointer(bias) }
        try forward.run(args, scratchpad: scratchpad, stream: s, name: name)
        _ = try reordered(UnsafeRawPointer(output), by: outputOut, into: UnsafeMutableRawPointer(y), scratchpad: scratchpad)
    }

    /// `plain` as `reorder` lays it out in `target` (and `target`), or `plain` itself when
    /// the layouts agree (no reorder).
    private func reordered(_ plain: UnsafeRawPointer, by reorder: DNNLPrimitive?, into target: UnsafeMutableRawPointer?,
                           scratchpad: UnsafeMutableRawPointer?) throws -> UnsafeRawPointer {
        guard let reorder else { return plain }
        guard let target else { throw MetronomeError.node(node: name, op: "Conv", message: "no buffer for a reordered operand") }
        try reorder.run([Arg.src: plain, Arg.dst: UnsafeRawPointer(target)], scratchpad: scratchpad, stream: engine.stream, name: name)
        return UnsafeRawPointer(target)
    }

    private func missing(_ region: Region) -> MetronomeError {
        MetronomeError.backend("internal error: convolution '\(name)' has no workspace region for \(region)")
    }

    /// Bytes of the blocked copies allocated so far (``persistentBytes`` once a forward ran).
    var allocatedBytes: Int { (sourceCopy == nil ? 0 : sourceBytes) + (weightsCopy == nil ? 0 : weightBytes) }

    /// Adds the gradients wanted (non-nil) into `dx`, `dw` and `dbias`.
    func backward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?) throws {
        guard sourceCopy != nil || sourceBytes == 0, weightsCopy != nil || weightBytes == 0 else {
            throw MetronomeError.node(node: name, op: "Conv", message: "backward pass before a training forward pass")
        }
        let base = engine.workspace(workspaceBytes), s = engine.stream, l = backwardLayout
        let scratchpad = l.pointer(.scratchpad, in: base)
        /// An operand in the layout a backward primitive reads: the forward's blocked copy,
        /// the plain buffer, or the plain buffer reordered into the workspace.
        func operand(_ plain: UnsafeRawPointer, copy: UnsafeMutableRawPointer?, _ reorder: DNNLPrimitive?, _ region: Region) throws -> UnsafeRawPointer {
            if let copy { return UnsafeRawPointer(copy) }
            return try reordered(plain, by: reorder, into: l.pointer(region, in: base), scratchpad: scratchpad)
        }
        let wantsWeights = dw != nil || dbias != nil
        // Reordered only when a primitive reads it: backward-weights, or backward-data when
        // it reads the same layout.
        let weightsGradient = wantsWeights || (dx != nil && dataGradientIsWeightsGradient)
            ? try operand(UnsafeRawPointer(dy), copy: nil, weightsGradientIn, .weightsGradient) : UnsafeRawPointer(dy)
        if wantsWeights {
            let source = try operand(UnsafeRawPointer(x), copy: weightsSourceIsCopy ? sourceCopy : nil, weightsSourceIn, .weightsSource)
            guard let diffWeights = l.pointer(.diffWeights, in: base) else { throw missing(.diffWeights) }
            var args: [Int32: UnsafeRawPointer] = [Arg.src: source, Arg.diffDst: weightsGradient, Arg.diffWeights: UnsafeRawPointer(diffWeights)]
            let diffBias = l.pointer(.diffBias, in: base)
            if let diffBias { args[Arg.diffBias] = UnsafeRawPointer(diffBias) }
            try backwardWeights.run(args, scratchpad: scratchpad, stream: s, name: name)
            if let dw { _ = try reordered(UnsafeRawPointer(diffWeights), by: weightsGradientOut, into: UnsafeMutableRawPointer(dw), scratchpad: scratchpad) }
            if let dbias, let diffBias {
                let d = diffBias.assumingMemoryBound(to: Float.self)
                for i in 0..<outputChannels { dbias[i] += d[i] }
            }
        }
        guard let dx else { return }
        guard let diffSource = l.pointer(.diffSource, in: base) else { throw missing(.diffSource) }
        let dataGradient = dataGradientIsWeightsGradient ? weightsGradient : try operand(UnsafeRawPointer(dy), copy: nil, dataGradientIn, .dataGradient)
        let weights = try operand(UnsafeRawPointer(w), copy: dataWeightsIsCopy ? weightsCopy : nil, dataWeightsIn, .dataWeights)
        try backwardData.run([Arg.diffDst: dataGradient, Arg.weights: weights, Arg.diffSrc: UnsafeRawPointer(diffSource)], scratchpad: scratchpad,
                             stream: s, name: name)
        _ = try reordered(UnsafeRawPointer(diffSource), by: sourceGradientOut, into: UnsafeMutableRawPointer(dx), scratchpad: scratchpad)
    }
}
