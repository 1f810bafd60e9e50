import Foundation
import Metronome

/// An integer tensor the importer evaluates itself (shape computations, constant indices).
struct IntTensor {
    var shape: [Int]
    var values: [SymbolicDim]

    init(shape: [Int], values: [SymbolicDim]) {
        self.shape = shape
        self.values = values
    }
    init(shape: [Int], ints: [Int]) { self.init(shape: shape, values: ints.map { SymbolicDim($0) }) }

    var isConstant: Bool { values.allSatisfy { $0.a == 0 } }
    var constants: [Int]? { isConstant ? values.map(\.b) : nil }
}

/// Decoded contents of an ONNX TensorProto.
enum DecodedTensor {
    case float(Tensor)
    case int(IntTensor)
}

extension Onnx_TensorProto.DataType {
    var name: String {
        switch self {
        case .float: return "float32"
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .int32: return "int32"
        case .int64: return "int64"
        case .string: return "string"
        case .bool: return "bool"
        case .float16: return "float16"
        case .double: return "float64"
        case .uint32: return "uint32"
        case .uint64: return "uint64"
        case .bfloat16: return "bfloat16"
        default: return "type \(rawValue)"
        }
    }
}

func dataTypeName(_ raw: Int32) -> String {
    Onnx_TensorProto.DataType(rawValue: Int(raw))?.name ?? "type \(raw)"
}

/// Reads initializer and Constant tensors: raw_data or the typed fields, inline or in an
/// external data file next to the model.
struct TensorDecoder {
    let directory: URL?

    func fail(_ name: String, _ m: String) -> MetronomeError { .invalidGraph("tensor '\(name)': \(m)") }

    func rawBytes(_ t: Onnx_TensorProto, name: String) throws -> Data? {
        if t.dataLocation == .external {
            var entries: [String: String] = [:]
            for e in t.externalData { entries[e.key] = e.value }
            guard let location = entries["location"], !location.isEmpty else { throw fail(name, "external data without a location") }
            guard let directory else { throw fail(name, "external data '\(location)' but the model was not read from a file") }
            guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
                throw fail(name, "external data location '\(location)' must be a relative path inside the model's directory")
            }
            // Resolve symbolic links before checking containment: a relative name can still
            // point outside the directory through a link (`weights.bin -> /etc/shadow`).
            let root = directory.resolvingSymlinksInPath().standardizedFileURL
            let url = directory.appendingPathComponent(location).resolvingSymlinksInPath().standardizedFileURL
            let rootPath = root.path.hasSuffix("/") ? root.path : root.path + "/"
            guard url.path.hasPrefix(rootPath) else {
                throw fail(name, "external data location '\(location)' resolves to \(url.path), outside the model's directory \(root.path)")
            }
            // Only regular files: opening a FIFO or device would block or read without end.
            let kind = try? FileManager.default.attributesOfItem(atPath: url.path)[.type] as? FileAttributeType
            guard kind == .typeRegular else {
                throw fail(name, kind == nil ? "cannot open external data file \(url.path)" : "external data \(url.path) is not a regular file")
            }
            guard let handle = try? FileHandle(forReadingFrom: url) else {
                throw fail(name, "cannot open external data file \(url.path)")
            }
            defer { try? handle.close() }
            var offset: UInt64 = 0
            if let offsetText = entries["offset"] {
                guard let v = UInt64(offsetText) else { throw fail(name, "bad external data offset '\(offsetText)' (must be a non-negative integer)") }
                offset = v
            }
            let size = (try? handle.seekToEnd()) ?? 0
            guard offset <= size else { throw fail(name, "external data offset \(offset) is past the end of \(url.path) (\(size) bytes)") }
            try handle.seek(toOffset: offset)
            if let lengthText = entries["length"] {
                guard let length = UInt64(lengthText) else { throw fail(name, "bad external data length '\(lengthText)' (must be a non-negative integer)") }
                guard length <= size - offset else {
                    throw fail(name, "external data in \(url.path) is truncated: length \(length) at offset \(offset) passes its end (\(size) bytes)")
                }
                return try handle.read(upToCount: Int(length)) ?? Data()
            }
            return try handle.readToEnd() ?? Data()
        }
        return t.hasRawData ? t.rawData : nil
    }

    func decode(_ t: Onnx_TensorProto, name: String) throws -> DecodedTensor {
        if t.hasSegment { throw fail(name, "segmented tensors are not supported") }
        let shape = t.dims.map { Int(clamping: $0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw fail(name, "negative dimensions \(shape)") }
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= Int(Int32.max) else { throw fail(name, "shape \(shape) is too large") }
            count = p
        }
        let raw = try rawBytes(t, name: name)
        let type = Onnx_TensorProto.DataType(rawValue: Int(t.dataType))
        func elements<T>(_ size: Int, _ typed: () -> [T], _ from: (UnsafeRawBufferPointer, Int) -> T) throws -> [T] {
            if let raw {
                guard raw.count == count * size else {
                    throw fail(name, "raw data holds \(raw.count) bytes but shape \(shape) of \(type?.name ?? "?") needs \(count * size)")
                }
                return raw.withUnsafeBytes { buf in (0..<count).map { from(buf, $0 * size) } }
            }
            let v = typed()
            guard v.count == count else { throw fail(name, "holds \(v.count) values but shape \(shape) needs \(count)") }
            return v
        }
        switch type {
        case .float?:
            let v: [Float] = try elements(4, { t.floatData }) { Float(bitPattern: $0.loadUnaligned(fromByteOffset: $1, as: UInt32.self).littleEndian) }
            return .float(try Tensor(shape: shape, scalars: v))
        case .double?:
            let v: [Double] = try elements(8, { t.doubleData }) { Double(bitPattern: $0.loadUnaligned(fromByteOffset: $1, as: UInt64.self).littleEndian) }
            return .float(try Tensor(shape: shape, scalars: v.map { Float($0) }))
        case .float16?:
            // Typed float16 values travel in int32_data as their bit patterns.
            let v: [UInt16] = try elements(2, { t.int32Data.map { UInt16(truncatingIfNeeded: $0) } }) {
                $0.loadUnaligned(fromByteOffset: $1, as: UInt16.self).littleEndian
            }
            return .float(try Tensor(shape: shape, scalars: v.map(halfToFloat)))
        case .bfloat16?:
            let v: [UInt16] = try elements(2, { t.int32Data.map { UInt16(truncatingIfNeeded: $0) } }) {
                $0.loadUnaligned(fromByteOffset: $1, as: UInt16.self).littleEndian
            }
            return .float(try Tensor(shape: shape, scalars: v.map { Float(bitPattern: UInt32($0) << 16) }))
        case .int64?:
            let v: [Int64] = try elements(8, { t.int64Data }) { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int64.self)) }
            return .int(IntTensor(shape: shape, ints: v.map { Int($0) }))
        case .int32?:
            let v: [Int32] = try elements(4, { t.int32Data }) { Int32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int32.self)) }
            return .int(IntTensor(shape: shape, ints: v.map { Int($0) }))
        case .int16?:
            let v: [Int] = try elements(2, { t.int32Data.map { Int($0) } }) { Int(Int16(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int16.self))) }
            return .int(IntTensor(shape: shape, ints: v))
        case .int8?:
            let v: [Int] = try elements(1, { t.int32Data.map { Int($0) } }) { Int($0.load(fromByteOffset: $1, as: Int8.self)) }
            return .int(IntTensor(shape: shape, ints: v))
        case .uint8?, .bool?:
            let v: [Int] = try elements(1, { t.int32Data.map { Int($0) } }) { Int($0.load(fromByteOffset: $1, as: UInt8.self)) }
            return .int(IntTensor(shape: shape, ints: v))
        case .uint16?:
            let v: [Int] = try elements(2, { t.int32Data.map { Int($0) } }) { Int($0.loadUnaligned(fromByteOffset: $1, as: UInt16.self).littleEndian) }
            return .int(IntTensor(shape: shape, ints: v))
        case .uint32?:
            let v: [Int] = try elements(4, { t.uint64Data.map { Int(clamping: $0) } }) { Int($0.loadUnaligned(fromByteOffset: $1, as: UInt32.self).littleEndian) }
            return .int(IntTensor(shape: shape, ints: v))
        default:
            throw fail(name, "data type \(dataTypeName(t.dataType)) is not supported; float32, float64, float16, bfloat16 and integer/bool tensors are")
        }
    }
}

func halfToFloat(_ h: UInt16) -> Float {
    let sign: Float = h & 0x8000 != 0 ? -1 : 1
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = Float(h & 0x3FF)
    if exponent == 0 { return sign * mantissa * Float(pow(2.0, -24.0)) }
    if exponent == 31 { return mantissa == 0 ? sign * .infinity : .nan }
    return sign * (1 + mantissa / 1024) * Float(pow(2.0, Double(exponent - 15)))
}
