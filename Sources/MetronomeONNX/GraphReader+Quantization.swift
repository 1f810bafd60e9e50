import Metronome

/// QuantizeLinear and DequantizeLinear (the QDQ form of quantized models, as ONNX Runtime's
/// quantizer and `metronome quantize` write them). The scale and zero point, constant inputs
/// in ONNX, become the node's attributes `scale`, `zero_point` and `type` (the integer type,
/// from the zero point's element type, else the quantized input's, else uint8), so that the
/// engine's ``Program`` stays float32: a quantized value holds integers.
extension GraphReader {
    mutating func quantizationNode(_ original: Node) throws {
        var node = original
        let dequantize = node.opType == "DequantizeLinear"
        guard (2...3).contains(node.inputs.count), let scaleName = input(node, 1) else {
            throw fail(node, "expects 2 or 3 inputs (x, scale, zero point), got \(node.inputs.count)")
        }
        guard let scale = graph.initializers[scaleName] else {
            throw fail(node, "scale (input '\(scaleName)') must be a float constant; computed scales are not supported")
        }
        guard scale.rank <= 1 else { throw fail(node, "scale must be a scalar or 1-D, has shape \(scale.shape)") }
        let x = node.inputs[0]
        var type: QuantizedType? = nil
        // Opset 19's `saturate` only concerns float8 types; opset 21's `output_dtype` names the
        // type when no zero point does; `block_size` (blocked quantization) is not supported.
        node.attributes["saturate"] = nil
        if let block = try intAttr(node, "block_size"), block != 0 {
            throw fail(node, "blocked quantization (block_size \(block)) is not supported; use per-tensor or per-axis scales")
        }
        node.attributes["block_size"] = nil
        if let code = try intAttr(node, "output_dtype") {
            if code != 0 {
                guard let t = quantizedType(Int32(code)), t != .int32 else {
                    throw fail(node, "output_dtype \(dataTypeName(Int32(code))) is not supported; int8 and uint8 are")
                }
                type = t
            }
            node.attributes["output_dtype"] = nil
        }
        var zeroPoints = Array(repeating: 0, count: scale.count)
        if let zpName = input(node, 2) {
            guard let code = elementTypes[zpName], let t = quantizedType(code) else {
                throw fail(node, "zero point (input '\(zpName)') must be an int8, uint8 or int32 constant"
                           + (elementTypes[zpName].map { ", is \(dataTypeName($0))" } ?? ""))
            }
            guard let zp = ints[zpName]?.constants else {
                throw fail(node, "zero point (input '\(zpName)') must be a constant")
            }
            guard zp.count == scale.count else {
                throw fail(node, "has \(scale.count) scales but \(zp.count) zero points")
            }
            if let declared = type, declared != t {
                throw fail(node, "output_dtype is \(declared.rawValue) but the zero point is \(t.rawValue)")
            }
            type = t
            zeroPoints = zp
        }
        if dequantize {
            let inputType = elementTypes[x].flatMap(quantizedType)
            if let t = type, let it = inputType, t != it {
                throw fail(node, "input '\(x)' is \(it.rawValue) but the zero point is \(t.rawValue)")
            }
            type = type ?? inputType
            guard let t = type else {
                throw fail(node, "input '\(x)' is not a quantized (int8, uint8 or int32) tensor")
            }
            type = t
        }
        let resolved = type ?? .uint8
        node.attributes["scale"] = .floats(scale.scalars)
        node.attributes["zero_point"] = .ints(zeroPoints)
        node.attributes["type"] = .string(resolved.rawValue)
        node.inputs = [x]
        if let constant = ints[x] {
            // Quantized weights (or biases): DequantizeLinear of an integer constant.
            guard dequantize, let values = constant.constants else {
                throw fail(node, "input '\(x)' is an integer tensor; QuantizeLinear reads float data")
            }
            let tensor = try Tensor(shape: constant.shape, scalars: values.map { Float($0) })
            if resolved == .int32 {
                // A bias: dequantized now (int32 values may exceed float32's exact integers, and
                // oneDNN takes float biases anyway).
                var axis: Int? = nil
                if scale.count > 1 {
                    let a = try intAttr(node, "axis") ?? 1
                    let r = a < 0 ? a + tensor.rank : a
                    guard (0..<tensor.rank).contains(r), tensor.shape[r] == scale.count else {
                        throw fail(node, "has \(scale.count) scales for axis \(a) of a tensor of shape \(tensor.shape)")
                    }
                    axis = r
                }
                let map = Quantization(scales: scale.scalars, zeroPoints: zeroPoints, axis: axis, type: .int32)
                var out = tensor
                map.forEach(tensor.shape) { i, c in out.scalars[i] = map.dequantize(tensor.scalars[i], channel: c) }
                graph.initializers[node.outputs[0]] = out
                return
            }
            // 8-bit weights stay integers (as float32), behind a DequantizeLinear step that the
            // int8 compile path reads as quantized weights.
            let name = freshName(x)
            graph.initializers[name] = tensor
            node.inputs = [name]
            emit(node)
            return
        }
        if graph.initializers[x] != nil {
            if dequantize {
                // Integers written as float (a model that quantized its weights at export).
                emit(node)
            } else {
                try fold(node)
                elementTypes[node.outputs[0]] = onnxCode(resolved)
            }
            return
        }
        guard runtime.contains(x) else { throw fail(node, "input '\(x)' is not defined") }
        emit(node)
        if !dequantize { elementTypes[node.outputs[0]] = onnxCode(resolved) }
    }

    func quantizedType(_ code: Int32) -> QuantizedType? {
        switch Onnx_TensorProto.DataType(rawValue: Int(code)) {
        case .int8?: return .int8
        case .uint8?: return .uint8
        case .int32?: return .int32
        default: return nil
        }
    }

    func onnxCode(_ t: QuantizedType) -> Int32 {
        switch t {
        case .int8: return Int32(Onnx_TensorProto.DataType.int8.rawValue)
        case .uint8: return Int32(Onnx_TensorProto.DataType.uint8.rawValue)
        case .int32: return Int32(Onnx_TensorProto.DataType.int32.rawValue)
        }
    }
}
