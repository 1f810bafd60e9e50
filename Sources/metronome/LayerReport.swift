import ArgumentParser
import Foundation
import Metronome

/// Per-kernel timing of one compiled model: what `bench --layers` prints and
/// `profile --layers` stores, one entry per kernel in run order.
struct LayerReport: Codable {
    struct Layer: Codable {
        var kernel: KernelInfo
        var medianMs: Double
        var meanMs: Double
        var minMs: Double
        var maxMs: Double
        /// This kernel's share of the sum of all kernels' medians.
        var share: Double

        enum CodingKeys: String, CodingKey {
            case kernel, medianMs = "median_ms", meanMs = "mean_ms", minMs = "min_ms", maxMs = "max_ms", share
        }
    }

    var layers: [Layer]
    /// Sum of the kernels' medians: the instrumented run time, a little above the model's own
    /// latency because the stream is waited on between kernels.
    var totalMs: Double
    /// Kernels for which oneDNN chose a reference (`ref:`) implementation.
    var referenceImplementations: Int

    enum CodingKeys: String, CodingKey {
        case layers, totalMs = "total_ms", referenceImplementations = "onednn_reference_implementations"
    }

    init(plan: Plan, samples: [[Double]]) throws {
        try self.init(kernels: plan.kernelInfo, samples: samples)
    }

    /// `samples[k]`: the durations of `kernels[k]` in milliseconds.
    init(kernels: [KernelInfo], samples: [[Double]]) throws {
        var layers: [Layer] = []
        for (info, s) in zip(kernels, samples) {
            let stats = try LatencyStatistics(s)
            layers.append(Layer(kernel: info, medianMs: stats.median, meanMs: stats.mean, minMs: stats.minimum,
                                maxMs: stats.maximum, share: 0))
        }
        totalMs = layers.reduce(0) { $0 + $1.medianMs }
        for i in layers.indices { layers[i].share = totalMs > 0 ? layers[i].medianMs / totalMs : 0 }
        self.layers = layers
        referenceImplementations = kernels.filter(\.isOneDNNReference).count
    }

    /// One row per kernel: index, name, fused nodes, primitive and implementation, shapes,
    /// median time and share.
    func render() -> String {
        var table = TextTable([.right("#"), .left("KERNEL"), .left("NODES"), .left("PRIMITIVE"), .left("IMPLEMENTATION"),
                               .left("SRC → DST"), .right("MEDIAN MS"), .right("SHARE")])
        for l in layers {
            let k = l.kernel
            let shapes = "\(Self.dims(k.srcShape)) → \(Self.dims(k.dstShape))"
                + (k.kernelShape.isEmpty ? "" : " k\(Self.dims(k.kernelShape))")
                + (k.groups > 1 ? " g\(k.groups)" : "")
            table.append([String(k.index), Self.clip(k.name, 28), Self.clip(k.nodes.joined(separator: "+"), 36),
                       k.primitive, k.implementation, shapes, String(format: "%.4f", l.medianMs),
                       String(format: "%.1f%%", l.share * 100)])
        }
        var text = table.render()
        text += String(format: "\nsum of kernel medians %.3f ms over %d kernels", totalMs, layers.count)
        if referenceImplementations > 0 {
            text += "; \(referenceImplementations) on a oneDNN reference (ref:) implementation"
        }
        return text + "\n"
    }

    static func dims(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: "x") }

    static func clip(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }
}

/// One run's kernels as a Chrome trace (chrome://tracing, ui.perfetto.dev): a complete event
/// per kernel on one track, with its primitive, implementation and shapes as arguments.
enum KernelTrace {
    static func write(plan: Plan, durationsMs: [Double], model: String, to url: URL, overwrite: Bool) throws {
        if !overwrite && FileManager.default.fileExists(atPath: url.path) {
            throw ValidationError("\(url.path) already exists; choose another --trace or pass --force")
        }
        var events: [[String: Any]] = [["name": "process_name", "ph": "M", "pid": 0, "tid": 0,
                                         "args": ["name": "metronome bench \(model)"]]]
        var start = 0.0
        for (info, ms) in zip(plan.kernelInfo, durationsMs) {
            events.append([
                "name": info.name, "cat": info.primitive, "ph": "X", "pid": 0, "tid": 0,
                "ts": start * 1000, "dur": ms * 1000,
                "args": ["nodes": info.nodes.joined(separator: "+"), "implementation": info.implementation,
                         "src": LayerReport.dims(info.srcShape), "dst": LayerReport.dims(info.dstShape),
                         "op": info.opType] as [String: Any],
            ])
            start += ms
        }
        let data = try JSONSerialization.data(withJSONObject: ["traceEvents": events, "displayTimeUnit": "ms"],
                                              options: [.sortedKeys])
        do { try data.write(to: url) } catch {
            throw ValidationError("cannot write \(url.path): \(error.localizedDescription)")
        }
    }
}
