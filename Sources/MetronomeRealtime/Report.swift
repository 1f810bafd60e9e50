import Foundation
import Metronome

/// `report.html`: a self-contained page (inline SVG, CSS and a few lines of inline script for
/// zooming; no external files, so it opens offline) with the summary table, a response-time CDF
/// per task with its deadline and analysis bound, and a zoomable timeline with per-core lanes.
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
        html += "</table><h2>Response-time CDF</h2>\n" + cdf(result, bounds: summary.tasks.map(\.boundMs)) + "\n<h2 id=\"timeline\">Timeline</h2>\n" + timeline(result, episodes: summary.interference)
        if result.memory?.account.budget != nil { html += "\n" + memoryChart(result) }
        html += "\n</body></html>\n"
        return html
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Response-time CDF per task; dashed lines mark deadlines, solid lines the analysis's
    /// response-time bound (`bounds`, ms, from the summary), so that a curve crossing its
    /// bound shows at a glance.
    static func cdf(_ result: RunResult, bounds: [Double?]) -> String {
        let (w, h, left, bottom) = (960.0, 320.0, 60.0, 40.0)
        let right = w - 230  // the legend's column
        let all = result.records.joined().compactMap(\.response)
        let deadlines = result.taskSet.tasks.map(\.deadline)
        let boundMax = bounds.compactMap { $0 }.max() ?? 0
        let xMax = max(Double(max(all.max() ?? 1, deadlines.max() ?? 1)) / 1e6, boundMax) * 1.05
        func x(_ ms: Double) -> Double { left + ms / xMax * (right - left) }
        func y(_ p: Double) -> Double { h - bottom - p * (h - bottom - 20) }
        var svg = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
        svg += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(right)\" y2=\"\(y(0))\" stroke=\"#333\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(left)\" y2=\"\(y(1))\" stroke=\"#333\"/>"
        for k in 0...5 {
            let ms = xMax * Double(k) / 5
            svg += "<text x=\"\(x(ms))\" y=\"\(h - bottom + 15)\" text-anchor=\"middle\">\(String(format: "%.1f", ms))</text>"
            svg += "<text x=\"\(left - 5)\" y=\"\(y(Double(k) / 5) + 4)\" text-anchor=\"end\">\(String(format: "%.1f", Double(k) / 5))</text>"
        }
        svg += "<text x=\"\((right + left) / 2)\" y=\"\(h - 5)\" text-anchor=\"middle\">response time (ms); dashed lines: deadlines; solid lines: analysis bounds</text>"
        for (i, records) in result.records.enumerated() {
            let color = palette[i % palette.count]
            let r = records.compactMap(\.response).sorted()
            let dl = Double(deadlines[i]) / 1e6
            svg += "<line x1=\"\(x(dl))\" y1=\"\(y(0))\" x2=\"\(x(dl))\" y2=\"\(y(1))\" stroke=\"\(color)\" stroke-dasharray=\"4 3\"/>"
            if let b = bounds[i] {
                svg += "<line class=\"bound\" x1=\"\(x(b))\" y1=\"\(y(0))\" x2=\"\(x(b))\" y2=\"\(y(1))\" stroke=\"\(color)\" stroke-width=\"2\"><title>\(escape(result.taskSet.tasks[i].name)): analysis bound \(String(format: "%.3f", b)) ms</title></line>"
            }
            guard !r.isEmpty else { continue }
            var points = "\(x(Double(r[0]) / 1e6)),\(y(0))"
            for (k, v) in r.enumerated() {
                let px = x(Double(v) / 1e6)
                points += " \(px),\(y(Double(k) / Double(r.count))) \(px),\(y(Double(k + 1) / Double(r.count)))"
            }
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points)\"/>"
            let bound = bounds[i].map { String(format: " (bound %.2f ms)", $0) } ?? " (no bound)"
            svg += "<text x=\"\(right + 15)\" y=\"\(30 + Double(i) * 14)\" fill=\"\(color)\">\(escape(result.taskSet.tasks[i].name))\(bound)</text>"
        }
        return svg + "</svg>"
    }

    /// Most span and job elements drawn in the timeline: a longer run shows its first part.
    static let timelineElementLimit = 20_000

    /// The zoomable timeline of the first part of the run (at least ten of the longest periods
    /// or one second, fewer when that would draw more than ``timelineElementLimit`` elements).
    ///
    /// Per-core lanes show which task's job computed on which core when (one colour per task,
    /// outlined red when the job missed its deadline; black ticks where a job was preempted,
    /// orange ticks where it handed its lock place over). Per-task lanes show releases (grey
    /// ticks), each job from start to end (pale; red when it missed), its execution spans
    /// (solid), lock waits (grey) and the lock-holding span (a black line under the job), and
    /// skipped releases (red lines). The plot is a nested SVG whose viewBox is in milliseconds,
    /// so zooming and panning is a few lines of inline script changing the viewBox (wheel,
    /// drag, buttons); without the script it shows the whole window. Under `unmanaged` a job is
    /// drawn on every core it may use: the OS picks among them.
    static func timeline(_ result: RunResult, episodes: [InterferenceEpisode] = []) -> String {
        let set = result.taskSet
        var window = min(result.elapsed, max(10 * (set.tasks.map(\.period).max() ?? 0), 1_000_000_000))
        var times = result.spans.joined().map(\.start) + result.records.joined().map(\.release)
        if times.count > timelineElementLimit {
            times.sort()
            window = min(window, max(1, times[timelineElementLimit]))
        }
        window = max(window, 1)
        // The page opens on the old default view (four of the longest periods, at least 200 ms);
        // zooming out shows the whole window.
        let initial = min(window, max(4 * (set.tasks.map(\.period).max() ?? 0), 200_000_000))
        let initialMs = Double(initial) / 1e6
        let cores = Array(Set(set.cores + result.spans.joined().flatMap(\.cores))).sorted()
        let (w, left, laneH, gap) = (1100.0, 110.0, 22.0, 14.0)
        let plotW = w - left - 20
        let coresTop = 20.0
        let tasksTop = coresTop + Double(cores.count) * laneH + gap + 14
        let taskH = 26.0
        let plotH = tasksTop + Double(set.tasks.count) * taskH + 4
        let windowMs = Double(window) / 1e6
        func x(_ ns: Int64) -> String { String(format: "%.6f", Double(ns) / 1e6) }
        func dx(_ ns: Int64) -> String { String(format: "%.6f", Double(max(ns, 0)) / 1e6) }
        func f3(_ ns: Int64) -> String { String(format: "%.3f", Double(ns) / 1e6) }
        let missed: [Set<Int>] = result.records.map { Set($0.filter { !$0.deadlineMet && !$0.skipped }.map(\.job)) }

        var out = episodes.isEmpty ? "" : "<p>Shaded in yellow: \(episodes.count) interference episode(s), stretches in which jobs ran slower than their WCET, woke late on cores the set left free or were held off their cores (see summary.json, <code>interference</code>).</p>"
        out += "<p>The first \(String(format: "%.0f", windowMs)) ms of the run"
        out += window < result.elapsed ? " (of \(String(format: "%.0f", Double(result.elapsed) / 1e6)) ms)" : ""
        out += initial < window ? ", opening on its first \(String(format: "%.0f", initialMs)) ms." : "."
        out += " Scroll to zoom, drag to pan (or open the page as report.html#t=FROM-TO, in ms). <button id=\"tl-in\">zoom in</button> <button id=\"tl-out\">zoom out</button> <button id=\"tl-reset\">reset</button></p>"
        let truncated = set.tasks.indices.filter { result.spansTruncated[$0] }.map { set.tasks[$0].name }
        if !truncated.isEmpty {
            out += "<p class=\"miss\">Span storage filled during the run for \(escape(truncated.joined(separator: ", "))): their later execution spans are missing.</p>"
        }
        var svg = "<svg id=\"tl\" width=\"\(Int(w))\" height=\"\(Int(plotH + 24))\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
        svg += "<text x=\"5\" y=\"\(coresTop - 6)\" font-weight=\"bold\">cores</text>"
        for (k, c) in cores.enumerated() {
            svg += "<text x=\"5\" y=\"\(coresTop + Double(k) * laneH + 15)\">core \(c)</text>"
        }
        svg += "<text x=\"5\" y=\"\(tasksTop - 6)\" font-weight=\"bold\">tasks</text>"
        for (i, t) in set.tasks.enumerated() {
            svg += "<text x=\"5\" y=\"\(tasksTop + Double(i) * taskH + 16)\" fill=\"\(palette[i % palette.count])\">\(escape(t.name))</text>"
        }
        var plot = "<svg id=\"tl-plot\" x=\"\(left)\" y=\"0\" width=\"\(plotW)\" height=\"\(plotH)\" viewBox=\"0 0 \(initialMs) \(plotH)\" preserveAspectRatio=\"none\" data-window=\"\(windowMs)\" data-initial=\"\(initialMs)\">"
        plot += "<rect x=\"0\" y=\"0\" width=\"\(windowMs)\" height=\"\(plotH)\" fill=\"#fafafa\"/>"
        for k in cores.indices where k % 2 == 1 {
            plot += "<rect x=\"0\" y=\"\(coresTop + Double(k) * laneH)\" width=\"\(windowMs)\" height=\"\(laneH)\" fill=\"#f0f0f0\"/>"
        }
        // Interference episodes (jobs of several tasks slower than their WCET), shaded behind
        // everything else.
        for e in episodes where e.startMs < windowMs {
            let tip = "<title>interference \(String(format: "%.1f–%.1f", e.startMs, e.endMs)) ms on core(s) \(e.cores.map(String.init).joined(separator: ",")): \(escape(e.tasks.joined(separator: ", "))) up to ×\(String(format: "%.2f", e.worstInflation)) their profiled median\(e.probeInflation.map { String(format: "; probe ×%.2f", $0) } ?? "")\(e.stallMs.map { String(format: "; woke up to %.2f ms late on free cores", $0) } ?? "")\(e.displacedMs.map { String(format: "; held off its core up to %.2f ms mid-job", $0) } ?? "")</title>"
            plot += "<rect class=\"interference\" x=\"\(String(format: "%.6f", e.startMs))\" y=\"0\" width=\"\(String(format: "%.6f", max(e.endMs - e.startMs, 0.05)))\" height=\"\(plotH)\" fill=\"#ffd54f\" fill-opacity=\"0.35\">\(tip)</rect>"
        }
        let lane = Dictionary(uniqueKeysWithValues: cores.enumerated().map { ($1, $0) })
        // Per-core lanes.
        for (i, spans) in result.spans.enumerated() {
            let color = palette[i % palette.count]
            for s in spans where s.kind == .execution && s.start < window {
                let late = missed[i].contains(s.job)
                let tip = "<title>\(escape(set.tasks[i].name)) job \(s.job): \(f3(s.start))–\(f3(s.end)) ms on core\(s.cores.count > 1 ? "s" : "") \(s.cores.map(String.init).joined(separator: ",")), layers \(s.firstLayer)–\(s.firstLayer + s.layers)\(s.ending == .completed ? "" : ", then \(s.ending == .preempted ? "preempted" : "lock handed over")")\(late ? " (missed its deadline)" : "")</title>"
                for c in s.cores {
                    let y = coresTop + Double(lane[c]!) * laneH
                    plot += "<rect x=\"\(x(s.start))\" y=\"\(y + 3)\" width=\"\(dx(s.duration))\" height=\"\(laneH - 6)\" fill=\"\(color)\""
                    plot += late ? " stroke=\"#d62728\" stroke-width=\"2\" vector-effect=\"non-scaling-stroke\">" : ">"
                    plot += tip + "</rect>"
                    if s.ending != .completed {
                        plot += "<line x1=\"\(x(s.end))\" y1=\"\(y)\" x2=\"\(x(s.end))\" y2=\"\(y + laneH)\" stroke=\"\(s.ending == .preempted ? "#000" : "#ff7f0e")\" stroke-width=\"2\" vector-effect=\"non-scaling-stroke\"><title>\(escape(set.tasks[i].name)) job \(s.job) \(s.ending == .preempted ? "preempted" : "handed its lock place over") at \(f3(s.end)) ms</title></line>"
                    }
                }
            }
        }
        // Per-task lanes.
        for (i, records) in result.records.enumerated() {
            let top = tasksTop + Double(i) * taskH
            let color = palette[i % palette.count]
            for r in records where r.release < window {
                plot += "<line x1=\"\(x(r.release))\" y1=\"\(top)\" x2=\"\(x(r.release))\" y2=\"\(top + taskH - 4)\" stroke=\"#999\" vector-effect=\"non-scaling-stroke\"/>"
                if let s = r.start, let e = r.end {
                    let fill = r.deadlineMet ? color : "#d62728"
                    plot += "<rect x=\"\(x(s))\" y=\"\(top + 4)\" width=\"\(dx(e - s))\" height=\"\(taskH - 12)\" fill=\"\(fill)\" fill-opacity=\"\(r.deadlineMet ? "0.3" : "0.5")\"><title>job \(r.job): released \(f3(r.release)) ms, response \(f3(r.response ?? 0)) ms, \(r.preemptions) preemption(s), lock wait \(f3(r.lockWait)) ms\(r.deadlineMet ? "" : " (missed)")</title></rect>"
                    if let a = r.lockAcquired, let b = r.lockReleased {
                        plot += "<line x1=\"\(x(a))\" y1=\"\(top + taskH - 6)\" x2=\"\(x(b))\" y2=\"\(top + taskH - 6)\" stroke=\"#000\" stroke-width=\"2\" vector-effect=\"non-scaling-stroke\"><title>job \(r.job) holds the lock \(f3(a))–\(f3(b)) ms</title></line>"
                    }
                } else {
                    plot += "<line x1=\"\(x(r.release))\" y1=\"\(top)\" x2=\"\(x(r.release))\" y2=\"\(top + taskH - 4)\" stroke=\"#d62728\" stroke-width=\"3\" vector-effect=\"non-scaling-stroke\"><title>job \(r.job) skipped (released at \(f3(r.release)) ms while the previous job ran)</title></line>"
                }
            }
            for s in result.spans[i] where s.start < window {
                let fill = s.kind == .execution ? color : "#999"
                plot += "<rect x=\"\(x(s.start))\" y=\"\(top + 7)\" width=\"\(dx(s.duration))\" height=\"\(taskH - 18)\" fill=\"\(fill)\"><title>job \(s.job): \(s.kind == .execution ? "running" : "waiting for the lock") \(f3(s.start))–\(f3(s.end)) ms</title></rect>"
            }
            // Swaps of this task's weights (memory budget): swap-ins as dark bars along the lane's
            // top edge (lighter for prefetches), evictions as ticks.
            for t in result.memory?.transfers ?? [] where t.task == i && t.start < window && t.end >= 0 {
                plot += "<rect x=\"\(x(t.start))\" y=\"\(top)\" width=\"\(dx(t.end - t.start))\" height=\"3\" fill=\"#000\" fill-opacity=\"\(t.prefetch ? "0.35" : "0.8")\"><title>swap-in\(t.prefetch ? " (prefetch)" : "") of \(ByteCountText.format(t.bytes)): \(f3(t.start))–\(f3(t.end)) ms</title></rect>"
            }
            for e in result.memory?.evictions ?? [] where e.task == i && e.time < window && e.time >= 0 {
                plot += "<line x1=\"\(x(e.time))\" y1=\"\(top)\" x2=\"\(x(e.time))\" y2=\"\(top + 6)\" stroke=\"#d62728\" vector-effect=\"non-scaling-stroke\"><title>weights evicted at \(f3(e.time)) ms</title></line>"
            }
        }
        plot += "</svg>"
        svg += plot + "<g id=\"tl-axis\">"
        for k in 0...6 {
            svg += "<text x=\"\(left + plotW * Double(k) / 6)\" y=\"\(plotH + 14)\" text-anchor=\"\(k == 6 ? "end" : "middle")\">\(String(format: initialMs < 60 ? "%.1f" : "%.0f", initialMs * Double(k) / 6)) ms</text>"
        }
        svg += "</g></svg>"
        return out + svg + "\n<script>\n" + zoomScript + "\n</script>"
    }

    /// Zoom (wheel, buttons) and pan (drag) of the timeline: changes the plot's viewBox and
    /// redraws the axis labels. Inline, so the page still opens offline.
    static let zoomScript = """
        (function () {
          const svg = document.getElementById('tl'), plot = document.getElementById('tl-plot'), axis = document.getElementById('tl-axis');
          const full = +plot.dataset.window, L = +plot.getAttribute('x'), W = +plot.getAttribute('width'), H = +plot.getAttribute('height');
          const initial = +plot.dataset.initial;
          let x0 = 0, w = initial, drag = null;
          function draw() {
            plot.setAttribute('viewBox', x0 + ' 0 ' + w + ' ' + H);
            let s = '';
            for (let k = 0; k <= 6; k++) {
              s += '<text x="' + (L + W * k / 6) + '" y="' + (H + 14) + '" text-anchor="' + (k === 6 ? 'end' : 'middle') + '">' + (x0 + w * k / 6).toFixed(w < 6 ? 2 : w < 60 ? 1 : 0) + ' ms</text>';
            }
            axis.innerHTML = s;
          }
          function zoom(factor, f) {
            const t = x0 + f * w;
            w = Math.min(full, Math.max(full / 1e6, w * factor));
            x0 = Math.min(Math.max(t - f * w, 0), full - w);
            draw();
          }
          svg.addEventListener('wheel', e => {
            e.preventDefault();
            const r = plot.getBoundingClientRect();
            zoom(e.deltaY < 0 ? 0.8 : 1.25, Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1));
          }, {passive: false});
          svg.addEventListener('mousedown', e => { drag = {x: e.clientX, x0: x0}; e.preventDefault(); });
          window.addEventListener('mouseup', () => { drag = null; });
          window.addEventListener('mousemove', e => {
            if (!drag) return;
            const r = plot.getBoundingClientRect();
            x0 = Math.min(Math.max(drag.x0 - (e.clientX - drag.x) / r.width * w, 0), full - w);
            draw();
          });
          document.getElementById('tl-in').onclick = () => zoom(0.5, 0.5);
          document.getElementById('tl-out').onclick = () => zoom(2, 0.5);
          document.getElementById('tl-reset').onclick = () => { x0 = 0; w = initial; draw(); };
          // report.html#t=FROM-TO (ms) opens zoomed on that stretch, scrolled to the timeline.
          const m = /^#t=([0-9.]+)-([0-9.]+)$/.exec(location.hash);
          if (m && +m[2] > +m[1]) {
            x0 = Math.min(+m[1], full * (1 - 1e-6));
            w = Math.min(full - x0, Math.max(full / 1e6, +m[2] - x0));
            draw();
            document.getElementById('timeline').scrollIntoView();
          }
        })();
        """
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
