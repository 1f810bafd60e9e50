import Foundation

/// An aligned text table: every column as wide as its widest cell, text left-aligned and
/// numbers right-aligned, so that columns always line up with their headers. Every table the
/// CLI prints goes through it (and every such command also has `--json`).
public struct TextTable: Sendable {
    public enum Alignment: Sendable { case left, right }

    public struct Column: Sendable {
        public var title: String
        public var alignment: Alignment

        public static func left(_ title: String) -> Column { Column(title: title, alignment: .left) }
        public static func right(_ title: String) -> Column { Column(title: title, alignment: .right) }
    }

    public var columns: [Column]
    public var rows: [[String]] = []

    public init(_ columns: [Column]) { self.columns = columns }

    public mutating func append(_ row: [String]) {
        precondition(row.count == columns.count, "a row needs one cell per column")
        rows.append(row)
    }

    public func render() -> String {
        // Widths in characters (what a terminal shows), not bytes: µ and × count once.
        let widths = columns.indices.map { c in ([columns[c].title] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.indices.map { c in
                let fill = String(repeating: " ", count: widths[c] - cells[c].count)
                return columns[c].alignment == .left ? cells[c] + fill : fill + cells[c]
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return ([line(columns.map(\.title))] + rows.map(line)).joined(separator: "\n")
    }
}
