/// Typed attributes of `DepthToSpace` and `SpaceToDepth`.
struct SpaceDepthAttributes: Hashable, Sendable {
    /// DepthToSpace's `mode`: DCR (depth-column-row, the default) reads channel
    /// `(i·b + j)·C' + c`, CRD (column-row-depth, PixelShuffle's order) reads `c·b² + i·b + j`.
    enum Mode: String, Hashable, Sendable { case dcr = "DCR", crd = "CRD" }
    var toSpace: Bool
    var blockSize: Int
    var mode: Mode
}

/// `DepthToSpace` (DCR and CRD) and `SpaceToDepth` on NCHW: a reshape, a 6-D transpose and a
/// reshape, computed as one strided gather. Reference kernel only.
struct SpaceDepthOperator: Operator {
    var onnxNames: [String] { ["DepthToSpace", "SpaceToDepth"] }

    func attributes(of opType: String) -> [String] { ["blocksize", "mode"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(1...1)
        let toSpace = p.node.opType == "DepthToSpace"
        guard p.node.attributes["blocksize"] != nil else { throw p.fail("attribute 'blocksize' is required") }
        let b = try p.int("blocksize", default: 0)
        guard b >= 1, b <= 1 << 15 else { throw p.fail("blocksize must be between 1 and 32768, got \(b)") }
        // SpaceToDepth has a mode since opset 28 (the inverse of DepthToSpace's).
        let name = try p.string("mode", default: "DCR")
        guard let mode = SpaceDepthAttributes.Mode(rawValue: name) else {
            throw p.fail("unsupported mode '\(name)'; \(p.node.opType) has DCR and CRD")
        }
        let a = SpaceDepthAttributes(toSpace: toSpace, blockSize: b, mode: mode)
        return (.custom(CustomAttributes(a)), [p.node.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .custom(let custom) = op, let a = custom.as(SpaceDepthAttributes.self) else {
            throw unexpected(op, c.node.name, c.node.opType)
        }
        let x = inputs[0], b = a.blockSize
        guard x.count == 4 else { throw c.fail("input must be 4-D NCHW, got shape \(x)") }
        if a.toSpace {
            guard x[1] % (b * b) == 0 else { throw c.fail("\(x[1]) channels are not divisible by blocksize² = \(b * b)") }
            return (op, [[x[0], x[1] / (b * b), x[2] * b, x[3] * b]])
        }
        guard x[2] % b == 0, x[3] % b == 0 else { throw c.fail("height and width of \(x) are not divisible by blocksize \(b)") }
        let out = [x[0], x[1] * b * b, x[2] / b, x[3] / b]
        _ = try c.checkedCount(out)
        return (op, [out])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .custom(let custom) = step.op, let a = custom.as(SpaceDepthAttributes.self) else {
            throw unexpected(step.op, step.name, step.opType)
        }
        ReferenceKernels.spaceDepth(x[0], xs[0], a, out: y[0], ys[0])
    }

    // oneDNN: reference only.

    /// Opset 17 has no SpaceToDepth mode: DCR is its only order, and CRD is refused.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        guard node.opType == "SpaceToDepth", let mode = node.attributes["mode"] else { return [node] }
        guard mode == .string("DCR") else {
            throw MetronomeError.node(node: node.name, op: node.opType, message: "mode CRD has no opset-17 form (SpaceToDepth has a mode from opset 28)")
        }
        var n = node
        n.attributes["mode"] = nil
        return [n]
    }

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    /// Channels and space trade places, so the channel count is fixed by the block size.
    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour {
        .pinned("\(step.opType) '\(step.name)' moves channels into space or back")
    }
}

extension ReferenceKernels {
    /// DepthToSpace / SpaceToDepth as ONNX defines them: reshape to 6-D, transpose, reshape.
    static func spaceDepth(_ x: In, _ xs: [Int], _ a: SpaceDepthAttributes, out y: Out, _ ys: [Int]) {
        let (n, c, h, w, b) = (xs[0], xs[1], xs[2], xs[3], a.blockSize)
        let shape6: [Int], perm: [Int]
        if a.toSpace {
            let cOut = c / (b * b)
            switch a.mode {
            case .dcr: shape6 = [n, b, b, cOut, h, w]; perm = [0, 3, 4, 1, 5, 2]
            case .crd: shape6 = [n, cOut, b, b, h, w]; perm = [0, 1, 4, 2, 5, 3]
            }
        } else {
            shape6 = [n, c, h / b, b, w / b, b]
            switch a.mode {
            case .dcr: perm = [0, 3, 5, 1, 2, 4]
            case .crd: perm = [0, 1, 3, 5, 2, 4]
            }
        }
        strided(x, shape6, start: Array(repeating: 0, count: 6), step: Array(repeating: 1, count: 6), perm: perm,
                out: y, perm.map { shape6[$0] })
    }
}
