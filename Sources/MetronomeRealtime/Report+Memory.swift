import Foundation
import Metronome

extension HTMLReport {
    /// Memory over the run: the bytes accounted against the budget (a step line), the
    /// process's measured resident set above its baseline (sampled), the budget (dashed), and
    /// a lane of swap-ins (one bar per transfer, in its task's colour; prefetches lighter) and
    /// evictions (ticks) on the same time axis.
    static func memoryChart(_ result: RunResult) -> String {
        guard let m = result.memory else { return "" }
        let set = result.taskSet
        let end = max(result.elapsed, m.rss.last?.time ?? 0, 1)
        let samples = m.rss.filter { $0.time >= 0 }
        let top = Double(max(m.account.budget ?? 0, m.peakAccounted, (samples.map(\.bytes).max() ?? m.baselineRSS) - m.baselineRSS, 1)) * 1.1
        let (w, h, left, right, plotTop, plotBottom, lane) = (1100.0, 330.0, 80.0, 20.0, 16.0, 250.0, 24.0)
        func x(_ ns: Int64) -> Double { left + Double(min(max(ns, 0), end)) / Double(end) * (w - left - right) }
        func y(_ bytes: Int) -> Double { plotBottom - Double(bytes) / top * (plotBottom - plotTop) }
        var svg = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-size=\"11\">"
        svg += "<line x1=\"\(left)\" y1=\"\(plotBottom)\" x2=\"\(w - right)\" y2=\"\(plotBottom)\" stroke=\"#888\"/>"
        for k in 0...4 {
            let b = Int(top / 1.1 * Double(k) / 4)
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>", left - 4, y(b) + 4, ByteCountText.format(b))
        }
        for k in 0...5 {
            let t = Int64(Double(end) * Double(k) / 5)
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f s</text>", x(t), plotBottom + 14, Double(t) / 1e9)
        }
        if let budget = m.account.budget {
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" stroke-dasharray=\"6,4\"/>", left, y(budget), w - right, y(budget))
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c00\" text-anchor=\"end\">budget %@</text>", w - right - 4, y(budget) - 4, ByteCountText.format(budget))
        }
        // Accounted bytes: a step line (before the run's start, the value at the start).
        var points: [(Int64, Int)] = []
        for s in m.accounted {
            if s.time <= 0 { points = [(0, s.bytes)] } else { points.append((s.time, s.bytes)) }
        }
        if let last = points.last { points.append((end, last.1)) }
        var path = ""
        for (k, p) in points.enumerated() {
            if k == 0 { path += String(format: "M%.1f,%.1f", x(p.0), y(p.1)) } else {
                path += String(format: "H%.1fV%.1f", x(p.0), y(p.1))
            }
        }
        svg += "<path d=\"\(path)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>"
        // Measured resident set above the baseline.
        let step = max(1, samples.count / 2000)
        let rss = stride(from: 0, to: samples.count, by: step).map { samples[$0] }
        if !rss.isEmpty {
            let d = rss.enumerated().map { k, s in String(format: "%@%.1f,%.1f", k == 0 ? "M" : "L", x(s.time), y(max(s.bytes - m.baselineRSS, 0))) }.joined()
            svg += "<path d=\"\(d)\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"1\"/>"
        }
        // Swap lane.
        let laneTop = plotBottom + 24
        svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">swap I/O</text>", left - 4, laneTop + lane / 2 + 4)
        for t in m.transfers where t.end >= 0 {
            let color = palette[t.task % palette.count]
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%@\" fill-opacity=\"%@\"><title>%@: %@ in %.2f ms%@</title></rect>",
                          x(t.start), laneTop, max(x(t.end) - x(t.start), 0.8), lane, color, t.prefetch ? "0.5" : "1",
                          escape(set.tasks[t.task].name), ByteCountText.format(t.bytes), Double(t.end - t.start) / 1e6, t.prefetch ? " (prefetch)" : "")
        }
        for e in m.evictions where e.time >= 0 {
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"><title>%@ evicted (%@)</title></line>",
                          x(e.time), laneTop - 4, x(e.time), laneTop, escape(set.tasks[e.task].name), ByteCountText.format(e.bytes))
        }
        svg += "</svg>"
        let legend = "<p><span style=\"color:#1f77b4\">━</span> bytes accounted (peak \(ByteCountText.format(m.peakAccounted))) · "
            + "<span style=\"color:#ff7f0e\">━</span> measured resident set above the baseline (peak \(ByteCountText.format(m.peakRSSDelta))\(m.peakIsExact ? ", from the kernel's high-water mark" : "")) · "
            + "<span style=\"color:#c00\">╌</span> budget · swap lane: one bar per swap-in in its task's colour (lighter: prefetch), ticks: evictions. "
            + "\(m.transfers.count) swap-ins, \(m.evictions.count) evictions.</p>"
        return "<h2>Memory</h2>\n" + legend + "\n" + svg
    }
}
