import Foundation

/// Byte counts written with a unit: `2GiB`, `512MiB`, `64KiB`, `1.5G` (binary, like `GiB`),
/// `2GB`/`500MB`/`1kB` (decimal) or plain bytes. Shared by command-line options and task-set
/// keys, so that both accept the same spellings.
public enum ByteCountText {
    /// The count, or nil when `text` is not a number with one of the units. Zero and negative
    /// counts parse (callers say why they are refused).
    public static func parse(_ text: String) -> Int? {
        let text = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("TiB", 1_099_511_627_776),
            ("kB", 1e3), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
            ("K", 1024), ("M", 1_048_576), ("G", 1_073_741_824), ("T", 1_099_511_627_776), ("B", 1),
        ]
        var number = Substring(text), scale = 1.0
        for (suffix, s) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = s
            break
        }
        guard let value = Double(number.trimmingCharacters(in: .whitespaces)), value.isFinite,
              abs(value * scale) < 9e18 else { return nil }
        return Int(value * scale)
    }

    /// A short binary form: `160.00 MiB`, `1.50 GiB`, `12.3 KiB`, `512 B` (every byte count
    /// the CLI prints).
    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        if abs(b) >= 1_073_741_824 { return String(format: "%.2f GiB", b / 1_073_741_824) }
        if abs(b) >= 1_048_576 { return String(format: "%.2f MiB", b / 1_048_576) }
        if abs(b) >= 1024 { return String(format: "%.1f KiB", b / 1024) }
        return "\(bytes) B"
    }
}
