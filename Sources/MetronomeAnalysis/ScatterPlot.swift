import Foundation

/// Predicted against measured latency as a self-contained SVG: log-log axes, one colour per
/// family, the y = x line and its ±10% band. Written by `metronome evaluate`.
public enum ScatterPlot {
    public struct Point: Sendable {
        public var measured: Double
        public var predicted: Double
        public var group: String
        public var label: String

        public init(measured: Double, predicted: Double, group: String, label: String) {
            self.measured = measured
            self.predicted = predicted
            self.group = group
            self.label = label
        }
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func tickLabel(_ v: Double) -> String {
        v >= 1 ? String(format: "%g", v) : String(format: "%.3g", v)
    }

    /// Panels side by side, one per (title, points).
    /// `axes` names the two quantities: (x, y), as the axis titles and the tooltips say them.
    public static func svg(_ panels: [(title: String, points: [Point])],
                           axes: (x: String, y: String) = ("measured", "predicted")) -> String {
        let size = 380.0, margin = 60.0, top = 40.0
        let groups = Array(Set(panels.flatMap { $0.points.map(\.group) })).sorted()
        let colour = Dictionary(uniqueKeysWithValues: groups.enumerated().map { ($1, palette[$0 % palette.count]) })
        let width = Double(panels.count) * (size + margin + 20) + 20
        let height = size + top + 60 + 26
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"]
        let all = panels.flatMap { $0.points.flatMap { [$0.measured, $0.predicted] } }.filter { $0 > 0 }
        let lo = (all.min() ?? 0.01) / 1.3, hi = (all.max() ?? 1) * 1.3
        for (index, panel) in panels.enumerated() {
            let ox = 20 + Double(index) * (size + margin + 20) + margin, oy = top
            func px(_ v: Double) -> Double { ox + (log10(v) - log10(lo)) / (log10(hi) - log10(lo)) * size }
            func py(_ v: Double) -> Double { oy + size - (log10(v) - log10(lo)) / (log10(hi) - log10(lo)) * size }
            out.append("<text x=\"\(ox + size / 2)\" y=\"\(oy - 12)\" text-anchor=\"middle\" font-size=\"13\">\(escape(panel.title))</text>")
            out.append("<rect x=\"\(ox)\" y=\"\(oy)\" width=\"\(size)\" height=\"\(size)\" fill=\"none\" stroke=\"#444\"/>")
            var e = floor(log10(lo))
            while pow(10, e) <= hi {
                for m in [1.0, 2, 5] {
                    let v = m * pow(10, e)
                    guard v >= lo && v <= hi else { continue }
                    out.append("<line x1=\"\(px(v))\" y1=\"\(oy)\" x2=\"\(px(v))\" y2=\"\(oy + size)\" stroke=\"#e4e4e4\"/>")
                    out.append("<line x1=\"\(ox)\" y1=\"\(py(v))\" x2=\"\(ox + size)\" y2=\"\(py(v))\" stroke=\"#e4e4e4\"/>")
                    out.append("<text x=\"\(px(v))\" y=\"\(oy + size + 14)\" text-anchor=\"middle\">\(tickLabel(v))</text>")
                    out.append("<text x=\"\(ox - 5)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(tickLabel(v))</text>")
                }
                e += 1
            }
            // The ±10% band and y = x.
            let band = [(lo, lo * 1.1), (hi / 1.1, hi), (hi, hi / 1.1), (lo * 1.1, lo)]
                .map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            out.append("<polygon points=\"\(band)\" fill=\"#999\" fill-opacity=\"0.15\"/>")
            out.append("<line x1=\"\(px(lo))\" y1=\"\(py(lo))\" x2=\"\(px(hi))\" y2=\"\(py(hi))\" stroke=\"#666\" stroke-dasharray=\"4 3\"/>")
            out.append("<text x=\"\(ox + size / 2)\" y=\"\(oy + size + 32)\" text-anchor=\"middle\">\(axes.x) median latency (ms)</text>")
            out.append("<text x=\"\(ox - 44)\" y=\"\(oy + size / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 \(ox - 44) \(oy + size / 2))\">\(axes.y) (ms)</text>")
            for p in panel.points where p.measured > 0 && p.predicted > 0 {
                let c = colour[p.group] ?? "#000"
                out.append("<circle cx=\(String(format: "\"%.1f\"", px(p.measured))) cy=\(String(format: "\"%.1f\"", py(min(max(p.predicted, lo), hi)))) r=\"3\" fill=\"\(c)\" fill-opacity=\"0.75\"><title>\(escape(p.label)): \(axes.x) \(String(format: "%.3f", p.measured)) ms, \(axes.y) \(String(format: "%.3f", p.predicted)) ms</title></circle>")
            }
        }
        var lx = 20 + margin
        let ly = height - 14
        for g in groups {
            out.append("<circle cx=\"\(lx)\" cy=\"\(ly)\" r=\"5\" fill=\"\(colour[g]!)\"/>")
            out.append("<text x=\"\(lx + 9)\" y=\"\(ly + 4)\">\(escape(g))</text>")
            lx += 18 + 7 * Double(g.count)
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
