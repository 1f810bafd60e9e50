import Foundation
import Metronome
import ZIPFoundation

/// One tensor of a PyTorch state dict, materialized in C order.
public struct TorchTensor: Sendable {
    public var dtype: TorchDType
    public var shape: [Int]
    /// The elements converted to Float (integer tensors too, e.g. `num_batches_tracked`).
    public var scalars: [Float]

    public var tensor: Tensor { (try? Tensor(shape: shape, scalars: scalars)) ?? Tensor(shape: [0]) }
}

/// Reads PyTorch checkpoints (`torch.save` of a state dict, or of a dict holding one) in
/// both container formats:
/// - the zip format of torch ≥ 1.6: `ARCHIVE/data.pkl` plus one `ARCHIVE/data/KEY` file per storage;
/// - the legacy format: a magic-number pickle, a protocol pickle, a system-info pickle, the
///   object pickle, the list of storage keys, then each storage's element count and bytes.
/// Pickles are decoded by ``RestrictedUnpickler``, which never executes anything.
public struct TorchCheckpoint: Sendable {
    public enum Format: String, Sendable { case zip, legacy }

    public var format: Format
    /// State dict entries in file order.
    public var entries: [(name: String, tensor: TorchTensor)]

    public var names: [String] { entries.map(\.name) }

    public subscript(_ name: String) -> TorchTensor? { entries.first { $0.name == name }?.tensor }

    public static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    public static func load(_ url: URL) throws -> TorchCheckpoint {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MetronomeError.invalidArgument("no such file: \(url.path)")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MetronomeError.invalidArgument("cannot read \(url.path): \(error.localizedDescription)")
        }
        if isZip(data) { return try parseZip(at: url, source: url.lastPathComponent) }
        return try parse(data, source: url.lastPathComponent)
    }

    static func isZip(_ data: Data) -> Bool {
        let head = [UInt8](data.prefix(4))
        return head == [0x50, 0x4B, 0x03, 0x04] || head == [0x50, 0x4B, 0x05, 0x06]
    }

    public static func parse(_ data: Data, source: String = "checkpoint") throws -> TorchCheckpoint {
        if isZip(data) {
            // ZIPFoundation's in-memory archives trap on some corrupt offsets (a seek past
            // the end yields a negative read size); its file-backed archives report them.
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("metronome-checkpoint-\(UUID().uuidString).zip")
            do { try data.write(to: url) } catch {
                throw MetronomeError.invalidArgument("\(source): cannot stage the archive for reading: \(error.localizedDescription)")
            }
            defer { try? FileManager.default.removeItem(at: url) }
            return try parseZip(at: url, source: source)
        }
        if data.first == 0x80 { return try parseLegacy([UInt8](data), source: source) }
        if data.count > 262, String(decoding: data[257..<262], as: UTF8.self) == "ustar" {
            throw MetronomeError.invalidArgument("\(source): tar-format checkpoints (PyTorch < 0.4) are not supported; re-save with a current PyTorch")
        }
        throw MetronomeError.invalidArgument("\(source) is not a PyTorch checkpoint (neither a zip archive nor a legacy pickle stream)")
    }

    // MARK: Zip format

    static func parseZip(at url: URL, source: String) throws -> TorchCheckpoint {
        func fail(_ m: String) -> MetronomeError { .invalidArgument("\(source): \(m)") }
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw fail("corrupt zip archive (\(error))")
        }
        let entries = Array(archive)
        let pickles = entries.filter { $0.path.hasSuffix("/data.pkl") || $0.path == "data.pkl" }
        guard pickles.count == 1, let pickleEntry = pickles.first else {
            throw fail(pickles.isEmpty ? "zip archive has no data.pkl; not a torch.save checkpoint"
                                       : "zip archive has several data.pkl files")
        }
        let prefix = String(pickleEntry.path.dropLast("data.pkl".count))
        if entries.contains(where: { $0.path == prefix + "constants.pkl" || $0.path.hasPrefix(prefix + "code/") }) {
            throw fail("this is a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead")
        }
        func read(_ entry: Entry) throws -> [UInt8] {
            guard entry.uncompressedSize <= UInt64(Int32.max) else { throw fail("entry \(entry.path) is too large") }
            var out = [UInt8]()
            out.reserveCapacity(Int(entry.uncompressedSize))
            do {
                _ = try archive.extract(entry, skipCRC32: false) { out.append(contentsOf: $0) }
            } catch {
                throw fail("cannot read \(entry.path) from the archive (\(error))")
            }
            return out
        }
        if let order = archive[prefix + "byteorder"] {
            let text = String(decoding: try read(order), as: UTF8.self)
            guard text == "little" else { throw fail("byte order '\(text)' is not supported (only little-endian)") }
        }
        var storages: [String: TorchStorageReference] = [:]
        var unpickler = RestrictedUnpickler(bytes: try read(pickleEntry), source: "\(source) (data.pkl)") { pid in
            guard case .tuple(let t) = pid, t.count >= 5, case .string("storage") = t[0],
                  case .global("torch", let typeName) = t[1], case .string(let key) = t[2], case .int(let count) = t[4], count >= 0 else {
                throw fail("unexpected persistent id \(pid)")
            }
            guard let dtype = TorchDType(rawValue: typeName) else { throw fail("unsupported storage type torch.\(typeName)") }
            let ref = TorchStorageReference(key: key, dtype: dtype, count: count, viewOf: nil)
            storages[key] = ref
            return .storage(ref)
        }
        let root = try unpickler.load()
        var cache: [String: [UInt8]] = [:]
        let tensors = try stateDict(root, source: source)
        var out: [(String, TorchTensor)] = []
        for (name, ref) in tensors {
            let key = ref.storage.key
            if cache[key] == nil {
                guard let entry = archive[prefix + "data/" + key] else { throw fail("storage '\(key)' of tensor '\(name)' is missing from the archive") }
                let bytes = try read(entry)
                guard bytes.count >= ref.storage.count * ref.dtype.size else {
                    throw fail("storage '\(key)' holds \(bytes.count) bytes but needs \(ref.storage.count * ref.dtype.size)")
                }
                cache[key] = bytes
            }
            out.append((name, try materialize(ref, storage: cache[key]!, base: 0, storageCount: ref.storage.count, name: name, source: source)))
        }
        return TorchCheckpoint(format: .zip, entries: out)
    }

    // MARK: Legacy format

    static func parseLegacy(_ bytes: [UInt8], source: String) throws -> TorchCheckpoint {
        func fail(_ m: String) -> MetronomeError { .invalidArgument("\(source): \(m)") }
        var reader = RestrictedUnpickler(bytes: bytes, source: source)
        let magic = try reader.load()
        guard case .bigInt(let m) = magic, m == legacyMagic else {
            throw fail("not a PyTorch checkpoint: the first pickle is \(magic), not the legacy magic number")
        }
        guard case .int(let proto) = try reader.load(), proto == 1001 else { throw fail("unsupported legacy protocol version") }
        guard case .dict(let info) = try reader.load() else { throw fail("missing system information record") }
        if case .bool(false)? = info["little_endian"] { throw fail("big-endian checkpoints are not supported") }

        var storages: [String: TorchStorageReference] = [:]
        var objects = RestrictedUnpickler(bytes: bytes, offset: reader.offset, source: source) { pid in
            guard case .tuple(let t) = pid, t.count >= 5, case .string("storage") = t[0],
                  case .global("torch", let typeName) = t[1], case .string(let rootKey) = t[2], case .int(let count) = t[4], count >= 0 else {
                throw fail("unexpected persistent id \(pid)")
            }
            guard let dtype = TorchDType(rawValue: typeName) else { throw fail("unsupported storage type torch.\(typeName)") }
            var ref = TorchStorageReference(key: rootKey, dtype: dtype, count: count, viewOf: nil)
            if t.count >= 6, case .tuple(let view) = t[5] {
                guard view.count == 3, case .string(let viewKey) = view[0], case .int(let offset) = view[1],
                      case .int(let viewSize) = view[2], offset >= 0, viewSize >= 0 else { throw fail("malformed storage view \(t[5])") }
                ref = TorchStorageReference(key: viewKey, dtype: dtype, count: viewSize, viewOf: (rootKey, offset))
            }
            if storages[rootKey] == nil || ref.viewOf == nil {
                storages[rootKey] = TorchStorageReference(key: rootKey, dtype: dtype, count: count, viewOf: nil)
            }
            return .storage(ref)
        }
        let root = try objects.load()
        var keysReader = RestrictedUnpickler(bytes: bytes, offset: objects.offset, source: source)
        guard case .list(let keyList) = try keysReader.load() else { throw fail("missing the list of storage keys") }
        let keys = try keyList.items.map { v -> String in
            guard case .string(let k) = v else { throw fail("storage key \(v) is not a string") }
            return k
        }
        // Storage records follow in key order: element count (int64, little-endian), then the bytes.
        var pos = keysReader.offset
        var data: [String: (start: Int, count: Int)] = [:]
        for key in keys {
            guard pos + 8 <= bytes.count else { throw fail("truncated: storage '\(key)' is missing") }
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(bytes[pos + i]) << (8 * UInt64(i)) }
            pos += 8
            guard let dtype = storages[key]?.dtype else { throw fail("storage '\(key)' is not referenced by any tensor") }
            guard n <= UInt64(bytes.count), Int(n) * dtype.size <= bytes.count - pos else {
                throw fail("truncated: storage '\(key)' declares \(n) elements but the file ends first")
            }
            data[key] = (pos, Int(n))
            pos += Int(n) * dtype.size
        }
        let tensors = try stateDict(root, source: source)
        var out: [(String, TorchTensor)] = []
        for (name, ref) in tensors {
            let rootKey = ref.storage.viewOf?.key ?? ref.storage.key
            guard let record = data[rootKey] else { throw fail("storage '\(rootKey)' of tensor '\(name)' is missing") }
            let base = record.start + (ref.storage.viewOf?.offset ?? 0) * ref.dtype.size
            let available = record.count - (ref.storage.viewOf?.offset ?? 0)
            out.append((name, try materialize(ref, storage: bytes, base: base, storageCount: available, name: name, source: source)))
        }
        return TorchCheckpoint(format: .legacy, entries: out)
    }

    // MARK: Shared

    /// The state dict inside the unpickled object: the object itself when it maps names to
    /// tensors, else the first of its `state_dict`, `model_state_dict`, `model`, `net` entries that does.
    static func stateDict(_ root: PickleValue, source: String) throws -> [(String, TorchTensorReference)] {
        func tensors(_ v: PickleValue) -> [(String, TorchTensorReference)]? {
            guard case .dict(let d) = v, !d.items.isEmpty else { return nil }
            var out: [(String, TorchTensorReference)] = []
            for (k, value) in d.items {
                guard case .string(let name) = k, case .tensor(let t) = value else { return nil }
                out.append((name, t))
            }
            return out
        }
        if let t = tensors(root) { return t }
        if case .dict(let d) = root {
            for key in ["state_dict", "model_state_dict", "model", "net"] {
                if let v = d[key], let t = tensors(v) { return t }
            }
            let keys = d.items.map { $0.0.description }.prefix(12).joined(separator: ", ")
            throw MetronomeError.invalidArgument("\(source): no state dict found (a dict mapping names to tensors); top-level keys are \(keys)")
        }
        throw MetronomeError.invalidArgument("\(source): the checkpoint holds \(root.description.prefix(80)), not a state dict")
    }

    /// Gathers a strided view out of storage bytes into a dense C-order tensor.
    static func materialize(_ ref: TorchTensorReference, storage: [UInt8], base: Int, storageCount: Int,
                            name: String, source: String) throws -> TorchTensor {
        func fail(_ m: String) -> MetronomeError { .invalidArgument("\(source): tensor '\(name)': \(m)") }
        var count = 1
        for d in ref.shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= Int(Int32.max) else { throw fail("shape \(ref.shape) is too large") }
            count = p
        }
        var scalars = [Float](repeating: 0, count: count)
        if count > 0 {
            var last = ref.offset
            for (d, s) in zip(ref.shape, ref.strides) { last += (d - 1) * s }
            guard last < storageCount, base + (last + 1) * ref.dtype.size <= storage.count else {
                throw fail("view (offset \(ref.offset), size \(ref.shape), stride \(ref.strides)) reaches past its storage of \(storageCount) elements")
            }
            let rank = ref.shape.count
            var index = [Int](repeating: 0, count: rank)
            var element = ref.offset
            let size = ref.dtype.size
            storage.withUnsafeBytes { raw in
                for i in 0..<count {
                    let at = base + element * size
                    scalars[i] = decode(raw, at, ref.dtype)
                    var d = rank - 1
                    while d >= 0 {
                        index[d] += 1
                        element += ref.strides[d]
                        if index[d] < ref.shape[d] { break }
                        element -= ref.strides[d] * ref.shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return TorchTensor(dtype: ref.dtype, shape: ref.shape, scalars: scalars)
    }

    @inline(__always)
    static func decode(_ raw: UnsafeRawBufferPointer, _ at: Int, _ dtype: TorchDType) -> Float {
        switch dtype {
        case .float32: return Float(bitPattern: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian)
        case .float64: return Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian))
        case .float16:
            return Float(halfBits: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian)
        case .bfloat16:
            return Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian) << 16)
        case .int64: return Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self)))
        case .int32: return Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int32.self)))
        case .int16: return Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int16.self)))
        case .int8: return Float(raw.load(fromByteOffset: at, as: Int8.self))
        case .uint8, .bool: return Float(raw[at])
        }
    }
}

extension Float {
    /// Converts IEEE 754 half-precision bits (portable; no Float16 type needed).
    init(halfBits h: UInt16) {
        let sign = UInt32(h >> 15) << 31
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            let v = Float(mantissa) * Float(sign == 0 ? 1 : -1) / Float(1 << 24)
            self = v
        } else if exponent == 31 {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        } else {
            self = Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }
}
