import Foundation
import Metronome

/// Reads and writes NumPy `.npy` files holding float32 arrays in little-endian C order,
/// the only layout Metronome exchanges. Anything else (another dtype, Fortran order, a
/// truncated or padded file) is rejected with a message naming what was found.
public enum NPY {
    public static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Reads the file at `url`.
    public static func read(_ url: URL) throws -> Tensor {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MetronomeError.invalidArgument("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try decode(data, source: url.path)
    }

    /// Decodes an in-memory `.npy` file.
    public static func decode(_ data: Data, source: String = "npy data") throws -> Tensor {
        let bytes = [UInt8](data)
        func fail(_ m: String) -> MetronomeError { .invalidTensor("\(source): \(m)") }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw fail("not a NumPy .npy file (missing the \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported .npy format version \(major).\(bytes[7])")
        }
        guard headerLength >= 0, headerStart + headerLength <= bytes.count else { throw fail("truncated header") }
        guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw fail("header is not text")
        }
        let fields = try parseHeader(header, fail: fail)
        guard fields.descr == "<f4" else {
            throw fail("dtype is '\(fields.descr)' but Metronome reads only float32 little-endian ('<f4'); convert with arr.astype('<f4')")
        }
        guard !fields.fortranOrder else {
            throw fail("array is in Fortran order; save a C-ordered array (np.ascontiguousarray)")
        }
        let shape = fields.shape
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= Int(Int32.max) else { throw fail("shape \(shape) is too large") }
            count = p
        }
        let payload = bytes.count - headerStart - headerLength
        guard payload == count * 4 else {
            throw fail("shape \(shape) needs \(count * 4) bytes of data but the file holds \(payload)")
        }
        var scalars = [Float](repeating: 0, count: count)
        scalars.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(headerStart + headerLength)...]))
            }
        }
        #if _endian(big)
        scalars = scalars.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) }
        #endif
        return try Tensor(shape: shape, scalars: scalars)
    }

    struct Header {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
    }

    /// Parses the Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
    static func parseHeader(_ text: String, fail: (String) -> MetronomeError) throws -> Header {
        var descr: String?
        var fortran: Bool?
        var shape: [Int]?
        var s = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        guard s.first == "{", s.last == "}" else { throw fail("malformed header '\(text)'") }
        s = s.dropFirst().dropLast()
        func skipSpace() { while let c = s.first, c == " " || c == "," || c == "\n" { s = s.dropFirst() } }
        func quoted() throws -> String {
            guard let q = s.first, q == "'" || q == "\"" else { throw fail("malformed header '\(text)'") }
            s = s.dropFirst()
            guard let end = s.firstIndex(of: q) else { throw fail("malformed header '\(text)'") }
            let v = String(s[..<end])
            s = s[s.index(after: end)...]
            return v
        }
        skipSpace()
        while !s.isEmpty {
            let key = try quoted()
            while s.first == " " { s = s.dropFirst() }
            guard s.first == ":" else { throw fail("malformed header '\(text)'") }
            s = s.dropFirst()
            while s.first == " " { s = s.dropFirst() }
            switch key {
            case "descr": descr = try quoted()
            case "fortran_order":
                if s.hasPrefix("False") { fortran = false; s = s.dropFirst(5) }
                else if s.hasPrefix("True") { fortran = true; s = s.dropFirst(4) }
                else { throw fail("malformed fortran_order in header '\(text)'") }
            case "shape":
                guard s.first == "(", let end = s.firstIndex(of: ")") else { throw fail("malformed shape in header '\(text)'") }
                let inner = s[s.index(after: s.startIndex)..<end]
                s = s[s.index(after: end)...]
                var dims: [Int] = []
                for part in inner.split(separator: ",") {
                    let t = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
                    if t.isEmpty { continue }
                    guard let v = Int(t), v >= 0 else { throw fail("malformed shape in header '\(text)'") }
                    dims.append(v)
                }
                shape = dims
            default:
                throw fail("unexpected key '\(key)' in header '\(text)'")
            }
            skipSpace()
        }
        guard let descr, let fortran, let shape else { throw fail("header '\(text)' lacks descr, fortran_order or shape") }
        return Header(descr: descr, fortranOrder: fortran, shape: shape)
    }

    /// Encodes `tensor` as a version 1.0 `.npy` file.
    public static func encode(_ tensor: Tensor) -> Data {
        let dims = tensor.shape.map(String.init)
        let shapeText = dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Magic (6) + version (2) + length (2) + header + "\n" is padded to a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data(magic)
        data.append(contentsOf: [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        tensor.scalars.withUnsafeBufferPointer { buffer in
            #if _endian(big)
            let swapped = buffer.map { $0.bitPattern.littleEndian }
            swapped.withUnsafeBufferPointer { data.append($0) }
            #else
            data.append(buffer)
            #endif
        }
        return data
    }

    /// Writes `tensor` to `url`, refusing to replace an existing file unless `overwrite`.
    public static func write(_ tensor: Tensor, to url: URL, overwrite: Bool = false) throws {
        if !overwrite && FileManager.default.fileExists(atPath: url.path) {
            throw MetronomeError.invalidArgument("\(url.path) already exists; pass --force to overwrite it")
        }
        do { try encode(tensor).write(to: url) } catch {
            throw MetronomeError.invalidArgument("cannot write \(url.path): \(error.localizedDescription)")
        }
    }
}
