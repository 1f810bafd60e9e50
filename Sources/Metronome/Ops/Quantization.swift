#if canImport(Glibc)
import Glibc
#endif
import CDNNL

/// The integer type of a quantized value. Programs hold every value as float32; a quantized
/// value holds integers of this type exactly, so the compiler may store it in this type.
public enum QuantizedType: String, Hashable, Sendable, CaseIterable, Codable {
    case int8, uint8, int32

    /// The values the type holds (QuantizeLinear saturates to them).
    public var range: ClosedRange<Int> {
        switch self {
        case .int8: return -128...127
        case .uint8: return 0...255
        case .int32: return Int(Int32.min)...Int(Int32.max)
        }
    }

    var dnnl: dnnl_data_type_t {
        switch self {
        case .int8: return dnnl_s8
        case .uint8: return dnnl_u8
        case .int32: return dnnl_s32
        }
    }
}

/// The affine map between real values and integers of one tensor (ONNX QuantizeLinear and
/// DequantizeLinear): `real = (q - zeroPoint) · scale`, one scale and zero point for the whole
/// tensor or one per index of `axis`.
public struct Quantization: Hashable, Sendable, CustomStringConvertible {
    public var scales: [Float]
    public var zeroPoints: [Int]
    /// The per-axis axis; nil for one scale for the whole tensor.
    public var axis: Int?
    public var type: QuantizedType

    public init(scales: [Float], zeroPoints: [Int], axis: Int? = nil, type: QuantizedType) {
        self.scales = scales
        self.zeroPoints = zeroPoints
        self.axis = scales.count > 1 ? axis : nil
        self.type = type
    }

    /// One scale and zero point for the whole tensor.
    public init(scale: Float, zeroPoint: Int, type: QuantizedType) {
        self.init(scales: [scale], zeroPoints: [zeroPoint], type: type)
    }

    public var isPerTensor: Bool { scales.count == 1 }
    public var isSymmetric: Bool { zeroPoints.allSatisfy { $0 == 0 } }

    /// `saturate(round_half_even(x / scale) + zeroPoint)`, as ONNX QuantizeLinear.
    @inline(__always)
    public func quantize(_ x: Float, channel c: Int = 0) -> Float {
        let r = Float(x / scales[c]).rounded(.toNearestOrEven) + Float(zeroPoints[c])
        return min(max(r, Float(type.range.lowerBound)), Float(type.range.upperBound))
    }

    @inline(__always)
    public func dequantize(_ q: Float, channel c: Int = 0) -> Float {
        (q - Float(zeroPoints[c])) * scales[c]
    }

    /// Applies `f(value, channel)` to every element of a row-major tensor of `shape`.
    public func forEach(_ shape: [Int], _ f: (Int, Int) -> Void) {
        let count = shape.reduce(1, *)
        guard let axis else { for i in 0..<count { f(i, 0) }; return }
        let inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
        for i in 0..<count { f(i, (i / inner) % n) }
    }

    /// Same scales, zero points and type (the axis only matters for several scales).
    func sameMap(as other: Quantization) -> Bool {
        scales == other.scales && zeroPoints == other.zeroPoints && type == other.type
            && (isPerTensor || axis == other.axis)
    }

    public var description: String {
        let s = isPerTensor ? "scale \(scales[0]), zero point \(zeroPoints[0])"
            : "\(scales.count) scales on axis \(axis ?? 0)"
        return "\(type.rawValue), \(s)"
    }
}

/// `QuantizeLinear` and `DequantizeLinear`. The importer (and `metronome quantize`) give each
/// node its scales, zero points and integer type as the attributes `scale`, `zero_point` and
/// `type` (ONNX passes them as constant inputs, whose element type is the integer type), so a
/// step carries its whole map. Quantized values stay float32 in the program, holding integers;
/// the reference kernels compute the ONNX formulas on them. The int8 compile path
/// (``Precision/int8``) stores them as 8-bit integers and runs the convolutions and inner
/// products between a DequantizeLinear and a QuantizeLinear in oneDNN's integer kernels
/// (Passes+Quantization.swift); what remains lowers to oneDNN reorders with scales.
struct QuantizeLinearOperator: Operator {
    struct Attributes: Hashable, Sendable {
        var dequantize: Bool
        var map: Quantization
    }

    var onnxNames: [String] { ["QuantizeLinear", "DequantizeLinear"] }

    /// The ONNX attributes (for errors; the importer has already read `saturate`,
    /// `output_dtype` and `block_size` and turned the constant inputs into `scale`, `zero_point`
    /// and `type`).
    func attributes(of opType: String) -> [String] { ["axis", "block_size (0 only)", "output_dtype", "saturate"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(1...1)
        guard case .floats(let scales)? = p.node.attributes["scale"] else {
            throw p.fail("has no constant scale (the importer reads input 1 into the attribute 'scale')")
        }
        p.ignore("scale")
        guard let typeName = p.node.attributes["type"], case .string(let t) = typeName, let type = QuantizedType(rawValue: t) else {
            throw p.fail("has no integer type (attribute 'type': int8, uint8 or int32)")
        }
        p.ignore("type")
        let dequantize = p.node.opType == "DequantizeLinear"
        if type == .int32 && !dequantize { throw p.fail("quantizing to int32 is not supported; use int8 or uint8") }
        let zeroPoints = try p.ints("zero_point") ?? Array(repeating: 0, count: scales.count)
        let axis = try p.int("axis", default: 1)
        guard !scales.isEmpty, scales.count == zeroPoints.count else {
            throw p.fail("has \(scales.count) scales but \(zeroPoints.count) zero points")
        }
        for s in scales where !(s.isFinite && s > 0) {
            throw p.fail("scale \(s) is not a positive finite number")
        }
        // The kernels multiply by 1/scale: a subnormal scale would make that infinite.
        for s in scales where !dequantize && !(1 / s).isFinite {
            throw p.fail("scale \(s) is too small: its reciprocal overflows float32")
        }
        for z in zeroPoints where !type.range.contains(z) {
            throw p.fail("zero point \(z) is outside the range of \(type.rawValue)")
        }
        if type == .int32, zeroPoints.contains(where: { $0 != 0 }) {
            throw p.fail("an int32 DequantizeLinear must have zero point 0")
        }
        let map = Quantization(scales: scales, zeroPoints: zeroPoints, axis: axis, type: type)
        return (.custom(CustomAttributes(Attributes(dequantize: dequantize, map: map))), [p.node.inputs[0]])
    }

    static func attributes(_ op: Op) -> Attributes? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Attributes.self)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard var a = Self.attributes(op) else { throw unexpected(op, c.node.name, c.node.opType) }
        if let axis = a.map.axis {
            let ax = try c.normalize(axis, rank: inputs[0].count)
            guard inputs[0][ax] == a.map.scales.count else {
                throw c.fail("has \(a.map.scales.count) scales for axis \(axis), whose extent is \(inputs[0][ax])")
            }
            a.map.axis = ax
        }
        return (.custom(CustomAttributes(a)), [inputs[0]])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let a = Self.attributes(step.op) else { throw unexpected(step.op, step.name, step.opType) }
        let (src, dst, map) = (x[0], y[0], a.map)
        if a.dequantize {
            map.forEach(xs[0]) { i, c in dst[i] = map.dequantize(src[i], channel: c) }
        } else {
            map.forEach(xs[0]) { i, c in dst[i] = map.quantize(src[i], channel: c) }
        }
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard let a = Self.attributes(step.op), step.postOps.isEmpty else { return false }
        return try b.quantizeReorder(step, a.map, dequantize: a.dequantize)
    }

    /// One multiply and one add or round per element.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        OperatorCost(category: .activation, flops: 2 * p.values[step.outputs[0]].count)
    }

    /// A per-tensor map passes channels through; a map with one scale per index of an axis
    /// fixes that axis (slimming would have to resize the scales with it).
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard let a = Self.attributes(step.op), !a.map.isPerTensor else { return .passThrough }
        return .pinned("\(step.opType) '\(step.name)' has one scale per index of axis \(a.map.axis ?? 0)")
    }

    /// The standard form: scale and zero point as constant inputs, the zero point's element
    /// type giving the integer type. A constant integer input (quantized weights) is written in
    /// its integer type too.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var n = node
        guard case .floats(let scales)? = node.attributes["scale"], case .string(let t)? = node.attributes["type"],
              let type = QuantizedType(rawValue: t) else {
            throw MetronomeError.node(node: node.name, op: node.opType, message: "has no scale or type to export")
        }
        var zeroPoints = Array(repeating: 0, count: scales.count)
        if case .ints(let z)? = node.attributes["zero_point"] { zeroPoints = z }
        let perTensor = scales.count == 1
        let shape = perTensor ? [] : [scales.count]
        n.attributes = [:]
        if !perTensor, let axis = node.attributes["axis"] { n.attributes["axis"] = axis }
        var inputs = [node.inputs[0]]
        if node.opType == "DequantizeLinear", let w = context.initializers[node.inputs[0]] {
            inputs[0] = context.addIntegers(w.scalars.map { Int($0) }, shape: w.shape, type: type, base: node.inputs[0])
        }
        inputs.append(context.addFloat(try Tensor(shape: shape, scalars: scales), base: node.name + ".scale"))
        inputs.append(context.addIntegers(zeroPoints, shape: shape, type: type, base: node.name + ".zero_point"))
        n.inputs = inputs
        return [n]
    }
}

extension Graph {
    /// Whether the graph is a quantized (QDQ) model: it has QuantizeLinear or DequantizeLinear nodes.
    public var isQuantized: Bool {
        nodes.contains { $0.opType == "QuantizeLinear" || $0.opType == "DequantizeLinear" }
    }

    /// The note for a quantized model run in fp32 (which computes its quantization in float).
    public func precisionNote(_ precision: Precision, model: String) -> String? {
        guard isQuantized, precision == .fp32 else { return nil }
        return "note: \(model) is quantized (QDQ); --precision int8 runs it on integer kernels, fp32 computes the same quantization in float\n"
    }
}
