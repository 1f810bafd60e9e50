import Foundation

/// RFC 4180 CSV as the dataset manifest and profile files use it: fields with commas, quotes or
/// line breaks are quoted, quotes doubled; every record ends with a line break.
public enum CSV {
    /// A malformed file, with the line it was found on.
    public struct FormatError: Error, CustomStringConvertible {
        public var path: String
        public var line: Int
        public var problem: String
        public var description: String { "\(path) line \(line): \(problem)" }
    }

    /// One CSV line, ending in a line break.
    public static func line(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",") + "\n"
    }

    /// Splits CSV text into records, each with the line number it starts on. A last record
    /// without its line break is refused: it is what an interrupted append leaves behind.
    public static func parse(_ text: String, path: String) throws -> [(line: Int, fields: [String])] {
        var records: [(line: Int, fields: [String])] = []
        var fields: [String] = [], field = "", quoted = false, fieldWasQuoted = false
        var line = 1, recordLine = 1
        var chars = Array(text.replacingOccurrences(of: "\r\n", with: "\n"))[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                guard field.isEmpty, !fieldWasQuoted else {
                    throw FormatError(path: path, line: line, problem: "a quote inside an unquoted field")
                }
                quoted = true; fieldWasQuoted = true
            case ",":
                fields.append(field); field = ""; fieldWasQuoted = false
            case "\n":
                fields.append(field); field = ""; fieldWasQuoted = false
                if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields)) }
                fields = []; line += 1; recordLine = line
            default:
                guard !fieldWasQuoted else { throw FormatError(path: path, line: line, problem: "text after a closing quote") }
                field.append(c)
            }
        }
        if quoted { throw FormatError(path: path, line: recordLine, problem: "unterminated quoted field") }
        if !fields.isEmpty || !field.isEmpty {
            throw FormatError(path: path, line: recordLine,
                              problem: "the last line has no line break (an interrupted write?); remove it or complete it")
        }
        return records
    }

    /// Appends lines to `path` (creating it) and flushes them to disk, so that an interrupted
    /// run keeps every record it completed.
    public static func append(_ text: String, to path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw FormatError(path: path, line: 0, problem: "cannot create the file")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw FormatError(path: path, line: 0, problem: "cannot open the file for writing")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.synchronize()
    }
}
