import ArgumentParser

/// A byte count on the command line: `2GiB`, `512MiB`, `64KiB`, `1.5G` (binary, like `GiB`),
/// `2GB`/`500MB`/`1kB` (decimal) or plain bytes.
struct ByteCountArgument: ExpressibleByArgument, Equatable {
    var bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces)
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
        guard let value = Double(number.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0,
              value * scale < 9e18 else { return nil }
        bytes = Int(value * scale)
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
