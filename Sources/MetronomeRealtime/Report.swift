import Foundation

/// `report.html`: a self-contained page (inline SVG and CSS, no scripts or external files)
/// with the summary table, a response-time CDF per task and a timeline of the run's start.
public enum HTMLReport {
    static let palette = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"]

    public static func render(_ result: RunResult, summary: RunSummary) -> String {
        let set = result.taskSet
        var html = """
        <!DOCTYPE html><html><head><meta charset="utf-8"><title>Metronome run: \(escape(set.name))</title>
        <style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
        td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}
        td:first-child{text-align:left}.miss{color:#c00;font-weight:bold}svg{background:#fff;border:1px solid #ddd}</style>
        </head><body><h1>\(escape(set.name))</h1>
        <p>Policy <b>\(set.policy.rawValue)</b>, preemption <b>\(set.preemption.rawValue)</b>,
        lock \(set.lockK.map { "k = \($0)" } ?? "none"), release \(set.release.rawValue), cores \(set.cores.map(String.init).joined(separator: ",")).
        Elapsed \(String(format: "%.2f", summary.elapsedS)) s; SCHED_FIFO: \(summary.realtimePriority ? "yes" : "no").
        Analysis: \(escape(summary.analysisMethod)).</p>
        <table><tr><th>task</th><th>model</th><th>period ms</th><th>jobs</th><th>misses</th><th>miss ratio</th>
        <th>min</th><th>p50</th><th>p90</th><th>p99</th><th>max ms</th><th>bound ms</th><th>max / bound</th><th>jitter p99 ms</th><th>utilization</th></tr>
        """
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "–" }
        for t in summary.tasks {
            let r = t.responseMs
            html += "<tr><td>\(escape(t.name))</td><td>\(escape(t.model))</td><td>\(f(t.periodMs))</td><td>\(t.jobs)</td>"
            html += "<td class=\"\(t.misses > 0 ? "miss" : "")\">\(t.misses)</td><td>\(String(format: "%.4f", t.missRatio))</td>"
            html += "<td>\(f(r?.min))</td><td>\(f(r?.p50))</td><td>\(f(r?.p90))</td><td>\(f(r?.p99))</td><td>\(f(r?.max))</td>"
            let over = (t.observedBoundRatio ?? 0) > 1
            html += "<td>\(f(t.boundMs))</td><td class=\"\(over ? "miss" : "")\">\(f(t.observedBoundRatio))</td><td>\(f(t.releaseJitterP99Ms))</td><td>\(String(format: "%.3f", t.utilization))</td></tr>\n"
        }
        html += "</table><h2>Response-time CDF</h2>\n" + cdf(result) + "\n<h2>Timeline</h2>\n" + timeline(result)
        html += "\n</body></html>\n"
        return html
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Response-time CDF per task; dashed lines mark deadlines.
    static func cdf(_ result: RunResult) -> String {
        let (w, h, left, bottom) = (760.0, 320.0, 60.0, 40.0)
        let all = result.records.joined().compactMap(\.response)
        let deadlines = result.taskSet.tasks.map(\.deadline)
        let xMax = Double(max(all.max() ?? 1, deadlines.max() ?? 1)) / 1e6 * 1.05
        func x(_ ms: Double) -> Double { left + ms / xMax * (w - left - 20) }
        func y(_ p: Double) -> Double { h - bottom - p * (h - bottom - 20) }
        var svg = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
        svg += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(w - 20)\" y2=\"\(y(0))\" stroke=\"#333\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(left)\" y2=\"\(y(1))\" stroke=\"#333\"/>"
        for k in 0...5 {
            let ms = xMax * Double(k) / 5
            svg += "<text x=\"\(x(ms))\" y=\"\(h - bottom + 15)\" text-anchor=\"middle\">\(String(format: "%.1f", ms))</text>"
            svg += "<text x=\"\(left - 5)\" y=\"\(y(Double(k) / 5) + 4)\" text-anchor=\"end\">\(String(format: "%.1f", Double(k) / 5))</text>"
        }
        svg += "<text x=\"\((w + left) / 2)\" y=\"\(h - 5)\" text-anchor=\"middle\">response time (ms); dashed lines: deadlines</text>"
        for (i, records) in result.records.enumerated() {
            let color = palette[i % palette.count]
            let r = records.compactMap(\.response).sorted()
            let dl = Double(deadlines[i]) / 1e6
            svg += "<line x1=\"\(x(dl))\" y1=\"\(y(0))\" x2=\"\(x(dl))\" y2=\"\(y(1))\" stroke=\"\(color)\" stroke-dasharray=\"4 3\"/>"
            guard !r.isEmpty else { continue }
            var points = "\(x(Double(r[0]) / 1e6)),\(y(0))"
            for (k, v) in r.enumerated() {
                let px = x(Double(v) / 1e6)
                points += " \(px),\(y(Double(k) / Double(r.count))) \(px),\(y(Double(k + 1) / Double(r.count)))"
            }
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points)\"/>"
            svg += "<text x=\"\(w - 170)\" y=\"\(30 + Double(i) * 14)\" fill=\"\(color)\">\(escape(result.taskSet.tasks[i].name))</text>"
        }
        return svg + "</svg>"
    }

    /// Gantt chart of the first part of the run: one row per task, a bar per job from start
    /// to end (including any time it was preempted; red: deadline missed), a tick per
    /// release, a red cross per skipped release.
    static func timeline(_ result: RunResult) -> String {
        let set = result.taskSet
        let window = Double(min(result.elapsed, max(4 * (set.tasks.map(\.period).max() ?? 0), 200_000_000)))
        let (w, row, left) = (960.0, 28.0, 110.0)
        let h = row * Double(set.tasks.count) + 40
        func x(_ ns: Int64) -> Double { left + Double(ns) / window * (w - left - 40) }
        var svg = "<p>First \(String(format: "%.0f", window / 1e6)) ms of the run.</p>"
        svg += "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
        for (i, records) in result.records.enumerated() {
            let top = 10 + Double(i) * row
            let color = palette[i % palette.count]
            svg += "<text x=\"5\" y=\"\(top + 15)\">\(escape(set.tasks[i].name))</text>"
            for r in records where Double(r.release) <= window {
                svg += "<line x1=\"\(x(r.release))\" y1=\"\(top)\" x2=\"\(x(r.release))\" y2=\"\(top + 20)\" stroke=\"#999\"/>"
                if let s = r.start, let e = r.end {
                    let fill = r.deadlineMet ? color : "#d62728"
                    svg += "<rect x=\"\(x(s))\" y=\"\(top + 3)\" width=\"\(max(1, x(min(e, Int64(window))) - x(s)))\" height=\"14\" fill=\"\(fill)\"><title>job \(r.job): response \(String(format: "%.3f", Double(r.response ?? 0) / 1e6)) ms\(r.deadlineMet ? "" : " (missed)")</title></rect>"
                } else {
                    let cx = x(r.release)
                    svg += "<path d=\"M\(cx - 4) \(top + 6) l8 8 m0 -8 l-8 8\" stroke=\"#d62728\" stroke-width=\"2\"><title>job \(r.job) skipped</title></path>"
                }
            }
        }
        let axis = 10 + Double(set.tasks.count) * row + 5
        for k in 0...6 {
            let ns = Int64(window * Double(k) / 6)
            svg += "<text x=\"\(x(ns))\" y=\"\(axis + 12)\" text-anchor=\"middle\">\(String(format: "%.0f", Double(ns) / 1e6)) ms</text>"
        }
        return svg + "</svg>"
    }
}

/// Writes a run's trace, summary and report into a directory.
public enum RunOutput {
    /// Writes `trace.csv`, `summary.json` and `report.html` into `directory`, which must
    /// not already hold them unless `overwrite`.
    public static func write(_ result: RunResult, summary: RunSummary, to directory: URL, overwrite: Bool = false) throws {
        let fm = FileManager.default
        let names = ["trace.csv", "summary.json", "report.html"]
        if !overwrite, let existing = names.first(where: { fm.fileExists(atPath: directory.appendingPathComponent($0).path) }) {
            throw TaskSetError(path: "", message: "\(directory.appendingPathComponent(existing).path) already exists; choose another --out or pass --force")
        }
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        try TraceCSV.render(result).write(to: directory.appendingPathComponent("trace.csv"), atomically: true, encoding: .utf8)
        try summary.json().write(to: directory.appendingPathComponent("summary.json"))
        try HTMLReport.render(result, summary: summary).write(to: directory.appendingPathComponent("report.html"),
                                                              atomically: true, encoding: .utf8)
    }
}
