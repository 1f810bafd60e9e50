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
        // torch.save stores entries uncompressed; a deflated entry may expand, but not
        // without bound (a zip bomb would otherwise allocate gigabytes from a small file).
        let attributes = (try? FileManager.default.attributesOfItem(atPath: url.path)) ?? [:]
        let fileSize = (attributes[.size] as? NSNumber)?.intValue ?? 0
        let maxEntryBytes = max(1 << 20, fileSize.multipliedReportingOverflow(by: maxInflation).partialValue)
        func read(_ entry: Entry) throws -> [UInt8] {
            guard entry.uncompressedSize <= UInt64(min(Int(Int32.max), maxEntryBytes)) else {
                throw fail("entry \(entry.path) declares \(entry.uncompressedSize) bytes, more than \(maxInflation)× the file's \(fileSize)")
            }
            let declared = Int(entry.uncompressedSize)
            var out = [UInt8]()
            out.reserveCapacity(declared)
            do {
                _ = try archive.extract(entry, skipCRC32: false) { chunk in
                    guard out.count + chunk.count <= declared else {
                        throw MetronomeError.invalidArgument("\(source): entry \(entry.path) holds more than the \(declared) bytes it declares")
                    }
                    out.append(contentsOf: chunk)
                }
            } catch let e as MetronomeError {
                throw e
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
        var budget = ElementBudget(source: source)
        for (name, ref) in tensors {
            let key = ref.storage.key
            let bytes: [UInt8]
            if let cached = cache[key] {
                bytes = cached
            } else {
                guard let entry = archive[prefix + "data/" + key] else { throw fail("storage '\(key)' of tensor '\(name)' is missing from the archive") }
                bytes = try read(entry)
                let (needed, overflow) = ref.storage.count.multipliedReportingOverflow(by: ref.dtype.size)
                guard !overflow, bytes.count >= needed else {
                    throw fail("storage '\(key)' holds \(bytes.count) bytes but declares \(ref.storage.count) elements of \(ref.dtype.size) bytes")
                }
                cache[key] = bytes
                budget.addStorage(elements: ref.storage.count)
            }
            let tensor = try materialize(ref, storage: bytes, base: 0, storageCount: ref.storage.count, name: name, source: source)
            try budget.spend(tensor.scalars.count, name: name)
            out.append((name, tensor))
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
        var budget = ElementBudget(source: source)
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
            budget.addStorage(elements: Int(n))
            pos += Int(n) * dtype.size
        }
        let tensors = try stateDict(root, source: source)
        var out: [(String, TorchTensor)] = []
        for (name, ref) in tensors {
            let rootKey = ref.storage.viewOf?.key ?? ref.storage.key
            guard let record = data[rootKey] else { throw fail("storage '\(rootKey)' of tensor '\(name)' is missing") }
            let viewOffset = ref.storage.viewOf?.offset ?? 0
            guard viewOffset <= record.count else {
                throw fail("tensor '\(name)': storage view at element \(viewOffset) starts past the end of storage '\(rootKey)' (\(record.count) elements)")
            }
            // viewOffset ≤ record.count, whose bytes are in the file, so this cannot overflow.
            let base = record.start + viewOffset * ref.dtype.size
            let tensor = try materialize(ref, storage: bytes, base: base, storageCount: record.count - viewOffset, name: name, source: source)
            try budget.spend(tensor.scalars.count, name: name)
            out.append((name, tensor))
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
            let keys = d.items.prefix(12).map { $0.0.description }.joined(separator: ", ")
            throw MetronomeError.invalidArgument("\(source): no state dict found (a dict mapping names to tensors); top-level keys are \(keys)")
        }
        throw MetronomeError.invalidArgument("\(source): the checkpoint holds \(root.description.prefix(80)), not a state dict")
    }

    /// How far a deflated zip entry may expand relative to the whole file.
    static let maxInflation = 64

    /// Caps the elements materialized over the whole checkpoint at ``maxViewsPerElement``
    /// times the elements its storages hold. Views may share storage (tied weights appear
    /// under two names), but a small file must not expand into gigabytes of floats by
    /// naming one storage under thousands of names.
    struct ElementBudget {
        static let maxViewsPerElement = 4
        let source: String
        var stored = 0
        var spent = 0

        mutating func addStorage(elements: Int) { stored = stored.addingReportingOverflow(elements).partialValue }

        mutating func spend(_ n: Int, name: String) throws {
            spent += n  // each n ≤ Int32.max and this runs once per entry, so no overflow
            let allowed = stored.multipliedReportingOverflow(by: Self.maxViewsPerElement)
            guard allowed.overflow || spent <= allowed.partialValue else {
                throw MetronomeError.invalidArgument(
                    "\(source): tensor '\(name)': the tensors so far hold \(spent) elements, more than \(Self.maxViewsPerElement)× the \(stored) elements stored in the file")
            }
        }
    }

    /// Gathers a strided view out of storage bytes into a dense C-order tensor.
    ///
    /// Every size and offset comes from the file, so all arithmetic is checked; a view may
    /// not hold more elements than its storage, and a zero stride on a dimension longer
    /// than 1 (a broadcast view that repeats storage) is refused rather than expanded.
    static func materialize(_ ref: TorchTensorReference, storage: [UInt8], base: Int, storageCount: Int,
                            name: String, source: String) throws -> TorchTensor {
        func fail(_ m: String) -> MetronomeError { .invalidArgument("\(source): tensor '\(name)': \(m)") }
        var count = 1
        for d in ref.shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= Int(Int32.max) else { throw fail("shape \(ref.shape.prefix(16)) is too large") }
            count = p
        }
        guard count > 0 else { return TorchTensor(dtype: ref.dtype, shape: ref.shape, scalars: []) }
        let geometry = "offset \(ref.offset), size \(ref.shape.prefix(16)), stride \(ref.strides.prefix(16))"
        guard count <= storageCount else {
            throw fail("view (\(geometry)) has \(count) elements but its storage holds \(max(0, storageCount)); views that repeat storage elements are not supported")
        }
        for (d, s) in zip(ref.shape, ref.strides) where d > 1 && s < 1 {
            throw fail("view (\(geometry)) has stride \(s) on a dimension of size \(d); zero and negative strides are not supported")
        }
        // The last element the view reads, offset + Σ (size - 1) · stride, with overflow checks.
        var last = ref.offset
        for (d, s) in zip(ref.shape, ref.strides) {
            let (step, o1) = (d - 1).multipliedReportingOverflow(by: s)
            let (sum, o2) = last.addingReportingOverflow(step)
            guard !o1, !o2 else { throw fail("view (\(geometry)) overflows 64-bit offsets") }
            last = sum
        }
        let size = ref.dtype.size
        // last < storageCount, and the storage's bytes are in memory, so (last + 1) · size is small.
        guard last < storageCount, base >= 0, base <= storage.count, (last + 1) * size <= storage.count - base else {
            throw fail("view (\(geometry)) reaches past its storage of \(max(0, storageCount)) elements")
        }
        // A dimension of size 1 is never stepped along; its stride (any value) is ignored so
        // that the walk below stays within the checked range.
        let strides = zip(ref.shape, ref.strides).map { $0.0 == 1 ? 0 : $0.1 }
        var scalars = [Float](repeating: 0, count: count)
        let rank = ref.shape.count
        var index = [Int](repeating: 0, count: rank)
        var element = ref.offset
        storage.withUnsafeBytes { raw in
            for i in 0..<count {
                let at = base + element * size
                scalars[i] = decode(raw, at, ref.dtype)
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    element += strides[d]
                    if index[d] < ref.shape[d] { break }
                    element -= strides[d] * ref.shape[d]
                    index[d] = 0
                    d -= 1
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
