import Foundation

/// Draws sweep results as an SVG: one panel per model (and batch), throughput in images/s
/// against the fold factor, each trial a dot, the median a line, and at each point the median
/// over trials of the speed-up against the same trial's original (TputNorm). Panels have their own y scale because the models' rates
/// differ by orders of magnitude.
public enum SweepChart {
    public static func svg(_ rows: [SweepRow], title: String = "Throughput vs fold factor") -> String {
        let summaries = ThroughputSweep.summarize(rows)
        var panels: [(String, Int)] = []
        for s in summaries where !panels.contains(where: { $0 == (s.model, s.batchSize) }) {
            panels.append((s.model, s.batchSize))
        }
        // One column per batch size when there are a few, so each row is one model.
        let batches = Set(panels.map(\.1)).count
        let columns = batches > 1 && batches <= 3 ? batches : min(3, max(1, panels.count))
        let rowsCount = (panels.count + columns - 1) / columns
        let (pw, ph) = (320.0, 230.0)
        let (left, right, top, bottom) = (62.0, 14.0, 30.0, 40.0)
        let width = Double(columns) * pw, height = Double(rowsCount) * ph + 40
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(width / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(escape(title))</text>

        """
        for (i, panel) in panels.enumerated() {
            let ox = Double(i % columns) * pw, oy = 40 + Double(i / columns) * ph
            let pts = summaries.filter { ($0.model, $0.batchSize) == panel }.sorted { $0.fold < $1.fold }
            let trials = rows.filter { ($0.model, $0.batchSize) == panel }
            let folds = pts.map(\.fold)
            guard let fMin = folds.min(), let fMax = folds.max() else { continue }
            let yMax = niceCeiling((trials.map(\.throughput).max() ?? 1) * 1.15)
            let plotW = pw - left - right, plotH = ph - top - bottom
            func x(_ f: Int) -> Double {
                fMax == fMin ? ox + left + plotW / 2 : ox + left + plotW * Double(f - fMin) / Double(fMax - fMin)
            }
            func y(_ v: Double) -> Double { oy + top + plotH * (1 - v / yMax) }
            out += "<text x=\"\(f1(ox + pw / 2))\" y=\"\(f1(oy + 16))\" text-anchor=\"middle\" font-weight=\"bold\">\(escape(panel.0)) (B=\(panel.1))</text>\n"
            out += "<rect x=\"\(f1(ox + left))\" y=\"\(f1(oy + top))\" width=\"\(f1(plotW))\" height=\"\(f1(plotH))\" fill=\"none\" stroke=\"#999\"/>\n"
            for k in 0...4 {
                let v = yMax * Double(k) / 4
                out += "<line x1=\"\(f1(ox + left))\" x2=\"\(f1(ox + left + plotW))\" y1=\"\(f1(y(v)))\" y2=\"\(f1(y(v)))\" stroke=\"#eee\"/>\n"
                out += "<text x=\"\(f1(ox + left - 4))\" y=\"\(f1(y(v) + 4))\" text-anchor=\"end\">\(short(v))</text>\n"
            }
            for f in folds {
                out += "<text x=\"\(f1(x(f)))\" y=\"\(f1(oy + top + plotH + 14))\" text-anchor=\"middle\">\(f)</text>\n"
            }
            out += "<text x=\"\(f1(ox + left + plotW / 2))\" y=\"\(f1(oy + ph - 8))\" text-anchor=\"middle\">fold factor f</text>\n"
            out += "<text transform=\"translate(\(f1(ox + 12)),\(f1(oy + top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">images/s</text>\n"
            if let base = pts.first(where: { $0.fold == 1 }) {
                out += "<line x1=\"\(f1(ox + left))\" x2=\"\(f1(ox + left + plotW))\" y1=\"\(f1(y(base.medianThroughput)))\" y2=\"\(f1(y(base.medianThroughput)))\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n"
            }
            for t in trials {
                out += "<circle cx=\"\(f1(x(t.fold)))\" cy=\"\(f1(y(t.throughput)))\" r=\"2.2\" fill=\"#9ecae1\"/>\n"
            }
            let path = pts.map { "\(f1(x($0.fold))),\(f1(y($0.medianThroughput)))" }.joined(separator: " ")
            out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\"/>\n"
            for p in pts {
                out += "<circle cx=\"\(f1(x(p.fold)))\" cy=\"\(f1(y(p.medianThroughput)))\" r=\"3.5\" fill=\"#08519c\"/>\n"
                out += "<text x=\"\(f1(x(p.fold) + (p.fold == fMin ? 4 : 0)))\" y=\"\(f1(y(p.medianThroughput) - 8))\" text-anchor=\"\(p.fold == fMin ? "start" : p.fold == fMax ? "end" : "middle")\" fill=\"#08519c\">\(String(format: "%.2f×", p.medianNorm))</text>\n"
            }
        }
        out += "</svg>\n"
        return out
    }

    static func f1(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// 1, 2 or 5 times a power of ten, at least `v`.
    static func niceCeiling(_ v: Double) -> Double {
        guard v > 0 else { return 1 }
        let p = pow(10, floor(log10(v)))
        for m in [1.0, 2.0, 2.5, 5.0, 10.0] where m * p >= v { return m * p }
        return 10 * p
    }

    static func short(_ v: Double) -> String {
        if v >= 1e6 { return String(format: "%.3gM", v / 1e6) }
        if v >= 1e3 { return String(format: "%.3gk", v / 1e3) }
        return String(format: "%.3g", v)
    }
}
