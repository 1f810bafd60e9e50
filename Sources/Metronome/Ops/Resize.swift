import CDNNL

/// Typed attributes of `Resize` (opsets 10–19) and `Upsample` (opsets 7 and 9).
///
/// `parse` keeps what the node says (scales or sizes for some axes); `inferShapes` resolves
/// them against the input shape into one output extent and one scale per axis, which is what
/// the kernels and the oneDNN lowering read.
struct ResizeAttributes: Hashable, Sendable {
    enum Mode: String, Hashable, Sendable { case nearest, linear, cubic }

    /// ONNX `coordinate_transformation_mode`: how an output coordinate maps to the input.
    enum Coordinates: String, Hashable, Sendable {
        case halfPixel = "half_pixel"
        case halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel"
        case alignCorners = "align_corners"
        case asymmetric
        case tfHalfPixelForNN = "tf_half_pixel_for_nn"
        case tfCropAndResize = "tf_crop_and_resize"
    }

    /// ONNX `nearest_mode`, plus the rule of Upsample and Resize-10 (which had no
    /// `nearest_mode`): floor on axes that grow, ceil on axes that shrink, as ONNX Runtime
    /// implements them.
    enum Rounding: String, Hashable, Sendable {
        case roundPreferFloor = "round_prefer_floor"
        case roundPreferCeil = "round_prefer_ceil"
        case floor, ceil
        case legacy
    }

    /// ONNX `keep_aspect_ratio_policy` (opset 18), which applies to `sizes` only.
    enum AspectPolicy: String, Hashable, Sendable {
        case stretch
        case notLarger = "not_larger"
        case notSmaller = "not_smaller"
    }

    var mode: Mode
    var coordinates: Coordinates
    var rounding: Rounding
    var policy: AspectPolicy = .stretch
    /// Cubic mode: the Keys kernel's `a`, and whether taps outside the input get weight 0
    /// (the others renormalized) instead of the edge value.
    var cubicCoefficient: Float = -0.75
    var excludeOutside = false
    /// `tf_crop_and_resize`: the region of interest as given (starts, then ends, for `axes`),
    /// resolved by shape inference to every axis; and the value of positions outside it.
    var roi: [Float]?
    var extrapolation: Float = 0
    /// The axes `scales`/`sizes` refer to (opset 18's `axes`); nil: every axis.
    var axes: [Int]?
    var scales: [Float]?
    var sizes: [Int]?
    /// Resolved by shape inference: one scale per input axis (the given one, or
    /// output/input extent when sizes were given) and the output shape.
    var resolvedScales: [Float] = []
    var outputShape: [Int] = []
}

/// `Resize` and `Upsample`: nearest and (multi)linear interpolation with every
/// `coordinate_transformation_mode` (`tf_crop_and_resize` with its roi and extrapolation value), every `nearest_mode`, from
/// constant scales or sizes. Cubic interpolation and antialiasing are refused by name.
///
/// oneDNN's resampling primitive maps output coordinates with the half-pixel rule and
/// rounds nearest ties up; it is used only where that gives exactly ONNX's answer (integer
/// up-scaling factors for nearest with half-pixel rounding to nearest or asymmetric floor;
/// half-pixel linear whose scale is the ratio of extents), and the reference kernel
/// everywhere else.
struct ResizeOperator: Operator {
    var onnxNames: [String] { ["Resize", "Upsample"] }

    func attributes(of opType: String) -> [String] {
        opType == "Upsample" ? ["mode", "scales"]
            : ["antialias", "axes", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside",
               "extrapolation_value", "keep_aspect_ratio_policy", "mode", "nearest_mode"]
    }

    func parameterInputs(of opType: String) -> Set<Int> { opType == "Upsample" ? [1] : [1, 2, 3] }

    /// Upsample and Resize-10 (recognised by its two inputs: later opsets need roi plus
    /// scales or sizes) map coordinates asymmetrically and read only `mode`.
    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        let legacy = n.opType == "Upsample" || n.inputs.count == 2
        try p.requireInputs(legacy ? 1...2 : 2...4)
        let modeName = try p.string("mode", default: "nearest")
        let mode: ResizeAttributes.Mode
        switch modeName {
        case "nearest": mode = .nearest
        case "linear": mode = .linear
        case "bilinear" where legacy: mode = .linear  // Upsample-7's name for linear
        case "cubic" where !legacy: mode = .cubic
        default: throw p.fail("unsupported mode '\(modeName)'; Metronome runs nearest, linear and cubic")
        }
        if legacy {
            var a = ResizeAttributes(mode: mode, coordinates: .asymmetric, rounding: .legacy)
            if n.opType == "Upsample", let attr = n.attributes["scales"] {
                p.ignore("scales")
                guard case .floats(let s) = attr else { throw p.fail("attribute 'scales' must be a list of floats") }
                a.scales = s
            } else {
                guard let s = try p.floatInput(1, what: "scales"), !s.isEmpty else { throw p.fail("scales are missing") }
                a.scales = s
            }
            try checkScales(a.scales ?? [], p)
            return (.custom(CustomAttributes(a)), [n.inputs[0]])
        }
        let coordName = try p.string("coordinate_transformation_mode", default: "half_pixel")
        guard let coordinates = ResizeAttributes.Coordinates(rawValue: coordName) else {
            throw p.fail("unsupported coordinate_transformation_mode '\(coordName)'")
        }
        let roundName = try p.string("nearest_mode", default: "round_prefer_floor")
        guard let rounding = ResizeAttributes.Rounding(rawValue: roundName), rounding != .legacy else {
            throw p.fail("unsupported nearest_mode '\(roundName)'")
        }
        // ONNX Runtime rounds tf_half_pixel_for_nn (opset 11 only) its own way towards ceil;
        // only the floor-leaning modes, where all agree, are run.
        if coordinates == .tfHalfPixelForNN && (mode != .nearest || rounding == .ceil || rounding == .roundPreferCeil) {
            throw p.fail("coordinate_transformation_mode 'tf_half_pixel_for_nn' is supported only for nearest resizing with nearest_mode floor or round_prefer_floor")
        }
        let policyName = try p.string("keep_aspect_ratio_policy", default: "stretch")
        guard let policy = ResizeAttributes.AspectPolicy(rawValue: policyName) else {
            throw p.fail("unsupported keep_aspect_ratio_policy '\(policyName)'")
        }
        if try p.int("antialias", default: 0) != 0 && mode != .nearest {
            throw p.fail("antialiased \(mode.rawValue) resizing is not supported")
        }
        var a = ResizeAttributes(mode: mode, coordinates: coordinates, rounding: rounding, policy: policy)
        a.extrapolation = try p.float("extrapolation_value", default: 0)
        if coordinates == .tfCropAndResize {
            guard let roi = try p.floatInput(1, what: "roi"), !roi.isEmpty else {
                throw p.fail("tf_crop_and_resize needs the region of interest (input 1, roi)")
            }
            a.roi = roi
        }
        a.cubicCoefficient = try p.float("cubic_coeff_a", default: -0.75)
        a.excludeOutside = try p.int("exclude_outside", default: 0) != 0
        a.axes = try p.ints("axes")
        if let s = try p.floatInput(2, what: "scales"), !s.isEmpty { a.scales = s }
        if let s = try p.integerInput(3, what: "sizes"), !s.isEmpty { a.sizes = s }
        switch (a.scales, a.sizes) {
        case (nil, nil): throw p.fail("either scales or sizes must be given")
        case (.some, .some): throw p.fail("only one of scales and sizes may be given")
        case (.some(let s), nil): try checkScales(s, p)
        case (nil, .some(let s)):
            guard s.allSatisfy({ $0 > 0 }) else { throw p.fail("sizes must be positive, got \(s)") }
        }
        if a.scales != nil && policy != .stretch {
            throw p.fail("keep_aspect_ratio_policy '\(policyName)' applies to sizes only")
        }
        return (.custom(CustomAttributes(a)), [n.inputs[0]])
    }

    private func checkScales(_ s: [Float], _ p: NodeParser) throws {
        guard s.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw p.fail("scales must be positive, got \(s)") }
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .custom(let custom) = op, var a = custom.as(ResizeAttributes.self) else {
            throw unexpected(op, c.node.name, c.node.opType)
        }
        let x = inputs[0], r = x.count
        let axes = try (a.axes ?? Array(0..<r)).map { try c.normalize($0, rank: r) }
        guard Set(axes).count == axes.count else { throw c.fail("axes \(a.axes ?? []) repeat an axis") }
        let given = a.scales?.count ?? a.sizes?.count ?? 0
        guard given == axes.count else {
            throw c.fail("\(a.scales != nil ? "scales" : "sizes") have \(given) values for \(axes.count) axes of input \(x)")
        }
        guard x.allSatisfy({ $0 > 0 }) else { throw c.fail("cannot resize the empty input \(x)") }
        var scales = Array(repeating: Float(1), count: r), out = x
        if let roi = a.roi {
            // One start and one end per axis: the given axes' from roi, the others whole.
            guard roi.count == 2 * axes.count || roi.count == 2 * r else {
                throw c.fail("roi has \(roi.count) values; it needs \(2 * axes.count) (starts, then ends)")
            }
            var full = Array(repeating: Float(0), count: r) + Array(repeating: Float(1), count: r)
            let listed = roi.count == 2 * r ? Array(0..<r) : axes
            for (i, axis) in listed.enumerated() {
                full[axis] = roi[i]
                full[r + axis] = roi[listed.count + i]
            }
            guard full.allSatisfy(\.isFinite) else { throw c.fail("roi \(roi) is not finite") }
            a.roi = full
        }
        if let s = a.scales {
            for (i, axis) in axes.enumerated() {
                scales[axis] = s[i]
                // tf_crop_and_resize with scales: ONNX's reference sizes the output from the
                // region, floor(length · (end − start) · scale), ONNX Runtime from the whole
                // length. Where they differ the node is refused.
                if let roi = a.roi, roi[r + axis] - roi[axis] != 1 {
                    throw c.fail("tf_crop_and_resize with scales and a region of \(roi[r + axis] - roi[axis]) of axis \(axis): ONNX implementations size the output differently; give sizes instead")
                }
                out[axis] = try extent((s[i] * Float(x[axis])).rounded(.down), c)
            }
        } else if let sizes = a.sizes {
            switch a.policy {
            case .stretch:
                for (i, axis) in axes.enumerated() {
                    scales[axis] = Float(sizes[i]) / Float(x[axis])
                    out[axis] = sizes[i]
                }
            case .notLarger, .notSmaller:
                let ratios = axes.enumerated().map { Float(sizes[$0.offset]) / Float(x[$0.element]) }
                let scale = (a.policy == .notLarger ? ratios.min() : ratios.max()) ?? 1
                for axis in axes {
                    scales[axis] = scale
                    out[axis] = try extent((scale * Float(x[axis])).rounded(.toNearestOrAwayFromZero), c)
                }
            }
        }
        // align_corners divides by the resized length less one: ONNX Runtime takes the
        // output's integer length, the ONNX reference `scale × length`. Where they differ
        // (scales whose product with the length is fractional) the node is refused.
        if a.coordinates == .alignCorners, a.scales != nil {
            for axis in 0..<r where Float(out[axis]) != scales[axis] * Float(x[axis]) {
                throw c.fail("align_corners with scale \(scales[axis]) on axis \(axis) of \(x) gives the fractional length \(scales[axis] * Float(x[axis])), where ONNX implementations disagree; give sizes instead")
            }
        }
        guard out.allSatisfy({ $0 > 0 }) else { throw c.fail("resizing \(x) gives the empty shape \(out)") }
        _ = try c.checkedCount(out)
        a.resolvedScales = scales
        a.outputShape = out
        return (.custom(CustomAttributes(a)), [out])
    }

    /// An output extent computed in floating point, checked before it becomes an integer.
    private func extent(_ v: Float, _ c: ShapeContext) throws -> Int {
        guard v.isFinite, v < Float(1 << 31) else { throw c.fail("output extent \(v) is too large") }
        return Int(v)
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .custom(let custom) = step.op, let a = custom.as(ResizeAttributes.self) else {
            throw unexpected(step.op, step.name, step.opType)
        }
        ReferenceKernels.resize(x[0], xs[0], a, out: y[0], ys[0])
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .custom(let custom) = step.op, let a = custom.as(ResizeAttributes.self),
              let alg = Self.oneDNNAlgorithm(a, input: b.program.shape(step.inputs[0])) else { return false }
        return try b.resampling(step, alg: alg)
    }

    /// The oneDNN resampling algorithm that computes exactly this resize, or nil.
    ///
    /// oneDNN maps output `o` of `O` to input `(o + 0.5)·L/O − 0.5` of `L`. With an integer
    /// factor `k = O/L` that is `q + (r − (k−1)/2)/k` for `o = q·k + r`, strictly within half
    /// a pixel of `q`: rounding to nearest gives ONNX's half-pixel nearest (either tie rule,
    /// as no ties occur) and ONNX's asymmetric floor `o/k`. Linear matches half-pixel
    /// whenever the scale is the extent ratio.
    static func oneDNNAlgorithm(_ a: ResizeAttributes, input x: [Int]) -> dnnl_alg_kind_t? {
        let out = a.outputShape, s = a.resolvedScales
        guard (3...5).contains(x.count), out.count == x.count, s.count == x.count,
              out[0] == x[0], out[1] == x[1], s[0] == 1, s[1] == 1 else { return nil }
        let spatial = 2..<x.count
        let halfPixel: Bool
        switch a.coordinates {
        case .halfPixel, .pytorchHalfPixel: halfPixel = spatial.allSatisfy { out[$0] > 1 }
        case .halfPixelSymmetric: halfPixel = spatial.allSatisfy { Float(out[$0]) == s[$0] * Float(x[$0]) }
        default: halfPixel = false
        }
        switch a.mode {
        case .nearest:
            guard spatial.allSatisfy({ out[$0] % x[$0] == 0 && s[$0] == Float(out[$0] / x[$0]) }) else { return nil }
            let nearestRounding = a.rounding == .roundPreferFloor || a.rounding == .roundPreferCeil
            let floorRounding = a.rounding == .floor || a.rounding == .legacy
            if halfPixel && nearestRounding { return dnnl_resampling_nearest }
            if (a.coordinates == .asymmetric || a.coordinates == .tfHalfPixelForNN) && floorRounding {
                return dnnl_resampling_nearest
            }
            return nil
        case .linear:
            guard halfPixel else { return nil }
            let exact = spatial.allSatisfy { abs(s[$0] - Float(out[$0]) / Float(x[$0])) <= 1e-6 * s[$0] }
            return exact ? dnnl_resampling_linear : nil
        case .cubic:
            return nil  // oneDNN has no cubic resampling: the reference kernel runs it
        }
    }

    /// Nearest moves data; linear costs `2^k` multiplies and `2^k − 1` adds per output
    /// element for `k` interpolated axes, cubic `4^k` and `4^k − 1`.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        guard case .custom(let custom) = step.op, let a = custom.as(ResizeAttributes.self), a.mode != .nearest else {
            return OperatorCost(category: .dataMovement)
        }
        let x = p.shape(step.inputs[0])
        let k = a.outputShape.indices.filter { a.outputShape[$0] != x[$0] || a.resolvedScales[$0] != 1 }.count
        let corners = 1 << ((a.mode == .cubic ? 2 : 1) * k)
        return OperatorCost(category: .elementwise, flops: (2 * corners - 1) * p.values[step.outputs[0]].count)
    }

    /// Resizing spatial axes passes channels through; resizing the channel axis pins them,
    /// and so do sizes that list the channel axis (its count is written in the constant).
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        let x = p.shape(step.inputs[0])
        guard case .custom(let custom) = step.op, let a = custom.as(ResizeAttributes.self),
              a.resolvedScales.count > 1, a.resolvedScales[1] == 1,
              x.count > 1, a.outputShape[1] == x[1] else {
            return .pinned("resize '\(step.name)' along channels")
        }
        if a.sizes != nil, (a.axes ?? Array(0..<x.count)).contains(where: { ($0 < 0 ? $0 + x.count : $0) == 1 }) {
            return .pinned("resize '\(step.name)' names its channel count in sizes")
        }
        return .passThrough
    }

    /// Opset 17 has Resize-13: Upsample and Resize-10 become Resize with asymmetric
    /// coordinates (floor or ceil as they round); opset-18/19 attributes must be defaults.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        func fail(_ message: String) -> MetronomeError {
            .node(node: node.name, op: node.opType, message: "cannot export to opset 17: \(message)")
        }
        let legacy = node.opType == "Upsample" || node.inputs.count == 2
        if legacy {
            var scales: [Float] = []
            var scalesName = node.inputs.count > 1 ? node.inputs[1] : ""
            if let a = node.attributes.removeValue(forKey: "scales"), case .floats(let s) = a {
                scales = s
                scalesName = context.addFloat(try Tensor(shape: [s.count], scalars: s), base: node.name + "_scales")
            } else if let t = context.initializers[scalesName] {
                scales = t.scalars
            } else {
                throw fail("scales '\(scalesName)' are not a constant")
            }
            var mode = "nearest"
            if let a = node.attributes["mode"], case .string(let m) = a { mode = m == "bilinear" ? "linear" : m }
            node.opType = "Resize"
            node.inputs = [node.inputs[0], "", scalesName]
            node.attributes = ["mode": .string(mode), "coordinate_transformation_mode": .string("asymmetric")]
            if mode == "nearest" {
                if scales.contains(where: { $0 < 1 }) && scales.contains(where: { $0 > 1 }) {
                    throw fail("nearest resizing that grows some axes and shrinks others rounds both ways")
                }
                node.attributes["nearest_mode"] = .string(scales.contains { $0 < 1 } ? "ceil" : "floor")
            }
            return [node]
        }
        if case .int(let v)? = node.attributes.removeValue(forKey: "antialias"), v != 0,
           node.attributes["mode"] == .string("linear") {
            throw fail("antialiased linear resizing")
        }
        if let a = node.attributes.removeValue(forKey: "keep_aspect_ratio_policy"), a != .string("stretch") {
            throw fail("keep_aspect_ratio_policy \(a)")
        }
        if let a = node.attributes.removeValue(forKey: "axes") {
            // Sizes of a trailing run of axes (the importer's form of PyTorch's batch-dependent
            // sizes): full sizes are the input's leading extents followed by them.
            guard case .ints(let axes) = a, let m = axes.first, m < 0, axes == Array(m...(-1)),
                  node.inputs.count > 3, !node.inputs[3].isEmpty else {
                throw fail("the axes attribute (opset 18) needs the input's rank, except for sizes of the last axes")
            }
            let shape = context.freshName(node.name + "_shape"), head = context.freshName(node.name + "_head")
            let full = context.freshName(node.name + "_full_sizes")
            let starts = context.addInt64([0], base: node.name + "_starts"), ends = context.addInt64([m], base: node.name + "_ends")
            var resize = node
            resize.inputs[3] = full
            if resize.inputs.count > 2 { resize.inputs[2] = "" }
            return [
                Node(name: shape, opType: "Shape", inputs: [node.inputs[0]], outputs: [shape]),
                Node(name: head, opType: "Slice", inputs: [shape, starts, ends], outputs: [head]),
                Node(name: full, opType: "Concat", inputs: [head, node.inputs[3]], outputs: [full], attributes: ["axis": .int(0)]),
            ] + (try exportONNX(resize, &context))
        }
        if let a = node.attributes["coordinate_transformation_mode"],
           a == .string("half_pixel_symmetric") || a == .string("tf_half_pixel_for_nn") {
            throw fail("coordinate_transformation_mode \(a)")
        }
        // Opset 11 wrote absent scales and roi as empty tensors; opset 13 leaves them out.
        for i in [1, 2] where i < node.inputs.count {
            if let t = context.initializers[node.inputs[i]], t.count == 0 { node.inputs[i] = "" }
        }
        return [node]
    }
}

extension NodeParser {
    /// A float constant input of any shape (Resize's scales), flattened.
    func floatInput(_ i: Int, what: String) throws -> [Float]? {
        guard let name = input(i) else { return nil }
        if let t = graph.initializers[name] { return t.scalars }
        if let v = graph.integerConstants[name] { return v.map { Float($0) } }
        throw fail("\(what) (input '\(name)') must be a constant; computed \(what) are not supported")
    }
}

extension ReferenceKernels {
    /// Nearest, multilinear or cubic resizing of a dense tensor of any rank, separably: every
    /// axis gets, per output position, its taps (input offsets and weights: one for nearest,
    /// two for linear, four for cubic), and each output element sums the products of its
    /// axes' taps.
    static func resize(_ x: In, _ xs: [Int], _ a: ResizeAttributes, out y: Out, _ ys: [Int]) {
        let r = xs.count
        guard ys.reduce(1, *) > 0 else { return }
        let inStrides = rowMajorStrides(xs)
        // taps[axis][o] = [(offset, weight)]
        var taps: [[[(Int, Float)]]] = []
        for axis in 0..<r {
            let length = xs[axis], outLength = ys[axis], scale = a.resolvedScales[axis]
            var axisTaps: [[(Int, Float)]] = []
            for o in 0..<outLength {
                var c = resizeCoordinate(o, input: length, output: outLength, scale: scale, a.coordinates)
                if let roi = a.roi {
                    // tf_crop_and_resize: positions outside the input take the extrapolation value
                    // (an empty tap list).
                    let (start, end) = (roi[axis], roi[r + axis]), last = Float(length - 1)
                    c = outLength > 1 ? start * last + Float(o) * (end - start) * last / Float(outLength - 1)
                        : start * last + (end - start) * last / 2
                    if c < 0 || c > last { axisTaps.append([]); continue }
                }
                var t: [(Int, Float)]
                switch a.mode {
                case .nearest:
                    // Clamping first changes no index (all round into the clamped range) and
                    // keeps the conversion to Int in range.
                    t = [(min(max(nearestIndex(min(max(c, -1), Float(length)), scale: scale, a.rounding), 0), length - 1), 1)]
                case .linear:
                    let clamped = min(max(c, 0), Float(length - 1))
                    let i0 = min(Int(clamped), length - 1), w = clamped - Float(i0)
                    t = [(i0, 1 - w), (min(i0 + 1, length - 1), w)]
                case .cubic:
                    t = cubicTaps(c, length: length, a: a.cubicCoefficient, excludeOutside: a.excludeOutside)
                }
                axisTaps.append(t.filter { $0.1 != 0 }.map { ($0.0 * inStrides[axis], $0.1) })
            }
            taps.append(axisTaps)
        }
        var index = Array(repeating: 0, count: r)
        let count = ys.reduce(1, *)
        var tapIndex = Array(repeating: 0, count: r)
        for i in 0..<count {
            // Every combination of one tap per axis.
            let lists = (0..<r).map { taps[$0][index[$0]] }
            var sum: Float = a.extrapolation
            if lists.allSatisfy({ !$0.isEmpty }) {
                sum = 0
                for d in 0..<r { tapIndex[d] = 0 }
                outer: while true {
                    var w: Float = 1, src = 0
                    for d in 0..<r { let (off, tw) = lists[d][tapIndex[d]]; w *= tw; src += off }
                    sum += w * x[src]
                    var d = r - 1
                    while d >= 0 {
                        tapIndex[d] += 1
                        if tapIndex[d] < lists[d].count { continue outer }
                        tapIndex[d] = 0
                        d -= 1
                    }
                    break
                }
            }
            y[i] = sum
            var d = r - 1
            while d >= 0 { index[d] += 1; if index[d] < ys[d] { break }; index[d] = 0; d -= 1 }
        }
    }

    /// The four taps of ONNX's cubic mode at input coordinate `c`: positions ⌊c⌋ − 1 … ⌊c⌋ + 2
    /// with Keys' coefficients for `a`; positions outside the input read the nearest edge, or
    /// with `excludeOutside` get weight 0 and the others are renormalized.
    static func cubicTaps(_ c: Float, length: Int, a: Float, excludeOutside: Bool) -> [(Int, Float)] {
        let f = c.rounded(.down)
        let t = c - f
        func near(_ s: Float) -> Float { ((a + 2) * s - (a + 3)) * s * s + 1 }            // |s| ≤ 1
        func far(_ s: Float) -> Float { ((a * s - 5 * a) * s + 8 * a) * s - 4 * a }         // 1 < |s| < 2
        var w = [far(t + 1), near(t), near(1 - t), far(2 - t)]
        // Keep the base index representable (coordinates far outside only read the edges).
        let base = Int(max(min(f, Float(length + 2)), -3))
        let positions = (0..<4).map { base - 1 + $0 }
        if excludeOutside {
            for k in 0..<4 where positions[k] < 0 || positions[k] >= length { w[k] = 0 }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
        }
        return (0..<4).map { (min(max(positions[$0], 0), length - 1), w[$0]) }
    }

    /// The input coordinate of output position `o`, as ONNX's `coordinate_transformation_mode` defines it.
    static func resizeCoordinate(_ o: Int, input length: Int, output outLength: Int, scale: Float,
                                 _ mode: ResizeAttributes.Coordinates) -> Float {
        let x = Float(o)
        switch mode {
        case .halfPixel: return (x + 0.5) / scale - 0.5
        case .halfPixelSymmetric:
            let adjustment = Float(outLength) / (scale * Float(length))
            let center = Float(length) / 2
            return center * (1 - adjustment) + (x + 0.5) / scale - 0.5
        case .pytorchHalfPixel: return outLength > 1 ? (x + 0.5) / scale - 0.5 : 0
        case .alignCorners: return outLength == 1 ? 0 : x * Float(length - 1) / Float(outLength - 1)
        case .asymmetric: return x / scale
        case .tfHalfPixelForNN: return (x + 0.5) / scale
        case .tfCropAndResize: return x  // replaced by the kernel, which knows the region
        }
    }

    /// The input index nearest to coordinate `c` under ONNX's `nearest_mode`.
    static func nearestIndex(_ c: Float, scale: Float, _ rounding: ResizeAttributes.Rounding) -> Int {
        let f = c.rounded(.down)
        let isTie = c - f == 0.5
        switch rounding {
        case .roundPreferFloor: return Int(isTie ? f : c.rounded(.toNearestOrAwayFromZero))
        case .roundPreferCeil: return Int(isTie ? f + 1 : c.rounded(.toNearestOrAwayFromZero))
        case .floor: return Int(f)
        case .ceil: return Int(c.rounded(.up))
        case .legacy: return Int(scale < 1 ? c.rounded(.up) : f)
        }
    }
}
