import Foundation

/// A progress bar on stderr with a count, the current item and an ETA.
///
/// On a terminal it redraws one line in place; when stderr is a file or a pipe (CI logs,
/// the tests) it prints one line per step instead, so logs stay readable.
struct ProgressBar {
    let total: Int
    private(set) var done = 0
    private let start = Date()
    private let interactive = isatty(STDERR_FILENO) != 0
    /// Items counted as done without work (skipped); excluded from the time per item.
    private var skipped = 0

    init(total: Int) { self.total = total }

    /// Announces the item about to be worked on (terminal only: a log gets one line per finished item).
    func show(_ item: String) {
        if interactive { draw(item) }
    }

    /// Marks one item finished; `skipped` items do not count toward the ETA's rate.
    mutating func advance(_ item: String, skipped isSkipped: Bool = false) {
        done += 1
        if isSkipped { skipped += 1 }
        draw(isSkipped ? "\(item) (already in the manifest)" : "\(item) done")
        if interactive && done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// Seconds left at the mean time of the items actually built so far.
    var eta: Double? {
        let built = done - skipped
        guard built > 0 else { return nil }
        return Date().timeIntervalSince(start) / Double(built) * Double(total - done)
    }

    private func draw(_ item: String) {
        let width = 24
        let filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let etaText = eta.map { "ETA \(Self.duration($0))" } ?? "ETA --"
        let text = "[\(bar)] \(done)/\(total) \(etaText) \(item)"
        FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + text : text + "\n").utf8))
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", t / 60 % 60))m" }
        if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
        return "\(t)s"
    }
}
