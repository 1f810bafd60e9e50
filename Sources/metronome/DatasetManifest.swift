import ArgumentParser
import Foundation
import MetronomeAnalysis

/// `DIR/manifest.csv` of `metronome dataset`: one row per written variant.
///
/// The manifest is the dataset's index and its resume state. Rows are appended as each
/// variant finishes, so an interrupted run keeps everything it completed; a row counts as
/// done only while its file still has the recorded sha256.
struct DatasetManifest {
    struct Row: Equatable {
        var file: String
        var baseModel: String
        var mode: String
        var amount: String
        /// Empty for l1, which has no random scores.
        var seed: String
        var params: Int
        var macs: Int
        var flops: Int
        var weightBytes: Int
        var sha256: String

        var fields: [String] {
            [file, baseModel, mode, amount, seed, String(params), String(macs), String(flops), String(weightBytes), sha256]
        }
    }

    static let header = ["file", "base_model", "mode", "amount", "seed", "params", "macs", "flops", "weight_bytes", "sha256"]

    let path: String
    private(set) var rows: [Row] = []

    /// Reads the manifest at `path`, or starts an empty one if there is none. A malformed
    /// manifest is refused with its line number rather than silently rewritten, because it
    /// is the record of work already done.
    init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { return }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("cannot read \(path) as UTF-8 text")
        }
        let records = try Self.parse(text, path: path)
        guard let first = records.first else { return }
        guard first.fields == Self.header else {
            throw ValidationError("\(path) line \(first.line): expected the header '\(Self.header.joined(separator: ","))', got '\(first.fields.joined(separator: ","))'")
        }
        var seen = Set<String>()
        for record in records.dropFirst() {
            let f = record.fields
            guard f.count == Self.header.count else {
                throw ValidationError("\(path) line \(record.line): expected \(Self.header.count) fields, got \(f.count)")
            }
            var numbers: [Int] = []
            for (i, name) in [(5, "params"), (6, "macs"), (7, "flops"), (8, "weight_bytes")] {
                guard let v = Int(f[i]), v >= 0 else {
                    throw ValidationError("\(path) line \(record.line): \(name) must be a non-negative integer, got '\(f[i])'")
                }
                numbers.append(v)
            }
            guard f[9].count == 64, f[9].allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw ValidationError("\(path) line \(record.line): sha256 must be 64 lowercase hex digits, got '\(f[9])'")
            }
            guard !f[0].isEmpty, !f[0].contains("/"), f[0] != ".", f[0] != ".." else {
                throw ValidationError("\(path) line \(record.line): file must be a plain file name in the dataset directory, got '\(f[0])'")
            }
            guard seen.insert(f[0]).inserted else {
                throw ValidationError("\(path) line \(record.line): \(f[0]) is listed twice")
            }
            rows.append(Row(file: f[0], baseModel: f[1], mode: f[2], amount: f[3], seed: f[4], params: numbers[0],
                            macs: numbers[1], flops: numbers[2], weightBytes: numbers[3], sha256: f[9]))
        }
    }

    func row(file: String) -> Row? { rows.first { $0.file == file } }

    /// Drops rows and rewrites the whole manifest through a temporary file and a rename, so a
    /// crash leaves either the old or the new manifest.
    mutating func remove(files: Set<String>) throws {
        guard !files.isEmpty else { return }
        rows.removeAll { files.contains($0.file) }
        let temporary = path + ".tmp"
        let text = ([Self.header] + rows.map(\.fields)).map(Self.line).joined()
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
            throw ValidationError("cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else { throw ValidationError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))") }
    }

    /// Appends one row (writing the header first if the manifest is new).
    mutating func append(_ row: Row) throws {
        var text = ""
        if !FileManager.default.fileExists(atPath: path) {
            text = Self.line(Self.header)
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw ValidationError("cannot create \(path)") }
        }
        text += Self.line(row.fields)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot open \(path) for writing") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.synchronize()
        rows.append(row)
    }

    static func line(_ fields: [String]) -> String { CSV.line(fields) }

    static func parse(_ text: String, path: String) throws -> [(line: Int, fields: [String])] {
        do { return try CSV.parse(text, path: path) } catch let error as CSV.FormatError {
            throw ValidationError(error.description)
        }
    }
}
