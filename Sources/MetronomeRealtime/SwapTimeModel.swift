import Foundation
import Metronome

/// How long a swap-in of `bytes` takes here: `t(bytes) = a + bytes / b`, fitted on reads
/// measured at start in the swap directory, exactly as swap-ins are done (the target pages
/// released first, so page-fault cost is included, and `O_DIRECT` where allowed). The bound
/// used by the analysis is the fit times the largest observed/fitted ratio times the margin,
/// so every observation lies under it. The I/O thread's CPU time is fitted the same way: it
/// is what a swap-in takes from the jobs it preempts.
public struct SwapTimeModel: Codable, Sendable, Equatable {
    /// a, ns, and b, bytes per second, of the wall-time fit.
    public var latencyNs: Double
    public var bytesPerSecond: Double
    /// The same for the I/O thread's CPU time.
    public var cpuLatencyNs: Double
    public var cpuBytesPerSecond: Double
    /// Largest observed / fitted time over all samples (≥ 1), for wall and CPU time.
    public var worstRatio: Double
    public var cpuWorstRatio: Double
    /// Extra safety factor applied on top (the set's timing margin).
    public var margin: Double
    /// Whether reads bypassed the page cache.
    public var direct: Bool
    public var samples: Int

    enum CodingKeys: String, CodingKey {
        case latencyNs = "a_ns", bytesPerSecond = "b_bytes_per_s", cpuLatencyNs = "cpu_a_ns", cpuBytesPerSecond = "cpu_b_bytes_per_s"
        case worstRatio = "worst_ratio", cpuWorstRatio = "cpu_worst_ratio", margin, direct, samples
    }

    public init(latencyNs: Double, bytesPerSecond: Double, cpuLatencyNs: Double = 0, cpuBytesPerSecond: Double = .infinity,
                worstRatio: Double = 1, cpuWorstRatio: Double = 1, margin: Double = 1, direct: Bool = false, samples: Int = 0) {
        self.latencyNs = latencyNs
        self.bytesPerSecond = bytesPerSecond
        self.cpuLatencyNs = cpuLatencyNs
        self.cpuBytesPerSecond = cpuBytesPerSecond
        self.worstRatio = worstRatio
        self.cpuWorstRatio = cpuWorstRatio
        self.margin = margin
        self.direct = direct
        self.samples = samples
    }

    /// The fitted wall time of a swap-in of `bytes`, ns.
    public func fitted(_ bytes: Int) -> Double { latencyNs + Double(bytes) / bytesPerSecond * 1e9 }

    /// The analysis's bound on one swap-in of `bytes` (0 bytes: 0), ns.
    public func bound(_ bytes: Int) -> Int64 {
        bytes <= 0 ? 0 : Int64((fitted(bytes) * worstRatio * margin).rounded(.up))
    }

    /// The bound on the I/O thread's CPU time for one swap-in of `bytes`, ns.
    public func cpuBound(_ bytes: Int) -> Int64 {
        guard bytes > 0 else { return 0 }
        let fit = cpuLatencyNs + (cpuBytesPerSecond.isFinite ? Double(bytes) / cpuBytesPerSecond * 1e9 : 0)
        return min(bound(bytes), Int64((max(fit, 0) * cpuWorstRatio * margin).rounded(.up)))
    }

    /// One line for logs.
    public var text: String {
        String(format: "swap-in time t(bytes) = %.3f ms + bytes / %.2f GB/s (fitted on %d reads%@; bound = fit × %.2f × margin %.2f); I/O thread CPU %.3f ms + bytes / %.2f GB/s",
               latencyNs / 1e6, bytesPerSecond / 1e9, samples, direct ? ", O_DIRECT" : ", buffered", worstRatio, margin,
               cpuLatencyNs / 1e6, cpuBytesPerSecond / 1e9)
    }

    /// Least-squares fit of `t = a + x / b` with a ≥ 0; returns (a, b, worst observed/fitted).
    public static func fit(_ points: [(x: Double, t: Double)]) -> (a: Double, b: Double, worst: Double) {
        let n = Double(points.count)
        let mx = points.reduce(0) { $0 + $1.x } / n, mt = points.reduce(0) { $0 + $1.t } / n
        let sxx = points.reduce(0) { $0 + ($1.x - mx) * ($1.x - mx) }
        let sxt = points.reduce(0) { $0 + ($1.x - mx) * ($1.t - mt) }
        var slope = sxx > 0 ? sxt / sxx : 0
        var a = mt - slope * mx
        if a < 0 || slope <= 0 {
            // Through the origin instead (a = 0), still a least-squares slope.
            a = max(0, slope <= 0 ? mt : 0)
            let sx2 = points.reduce(0) { $0 + $1.x * $1.x }
            slope = sx2 > 0 ? points.reduce(0) { $0 + $1.x * max($1.t - a, 0) } / sx2 : 0
        }
        let b = slope > 0 ? 1 / slope : .infinity
        let worst = points.reduce(1.0) { w, p in
            let f = a + p.x * slope
            return f > 0 ? max(w, p.t / f) : w
        }
        return (a, b, worst)
    }

    /// Measures reads of 64 KiB up to `maxBytes` (`repeats` each) from a scratch file in
    /// `directory` into released anonymous pages, and fits the model. The file is removed.
    public static func calibrate(directory: String, maxBytes: Int = 64 << 20, repeats: Int = 4,
                                 margin: Double = 1.2) throws -> SwapTimeModel {
        let path = (directory as NSString).appendingPathComponent("calibration.swap")
        let file = try SwapFile(creating: path)
        defer { unlink(path) }
        let page = WeightRegion.pageSize
        let size = max(maxBytes / page * page, 16 * page)
        guard let buffer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), buffer != MAP_FAILED else {
            throw MetronomeError.backend("cannot map \(size) bytes to calibrate swap-ins")
        }
        defer { munmap(buffer, size) }
        // Data that does not compress or deduplicate.
        var g = SplitMix64(seed: 7)
        let words = buffer.bindMemory(to: UInt64.self, capacity: size / 8)
        for i in 0..<size / 8 { words[i] = g.next() }
        _ = try file.append(buffer, bytes: size)
        var wall: [(x: Double, t: Double)] = [], cpu: [(x: Double, t: Double)] = []
        var bytes = 16 * page
        var sizes: [Int] = []
        while bytes < size { sizes.append(bytes); bytes *= 4 }
        sizes.append(size)
        for _ in 0..<max(repeats, 1) {
            for b in sizes {
                guard madvise(buffer, b, MADV_DONTNEED) == 0 else { throw MetronomeError.backend("madvise failed while calibrating swap-ins") }
                let c0 = ThreadCPUClock.now(), t0 = MonotonicClock.now()
                try file.read(into: buffer, bytes: b, at: 0)
                let t1 = MonotonicClock.now(), c1 = ThreadCPUClock.now()
                wall.append((Double(b), Double(t1 - t0)))
                cpu.append((Double(b), Double(c1 - c0)))
            }
        }
        let w = fit(wall), c = fit(cpu)
        return SwapTimeModel(latencyNs: w.a, bytesPerSecond: w.b * 1e9, cpuLatencyNs: c.a, cpuBytesPerSecond: c.b * 1e9,
                             worstRatio: w.worst, cpuWorstRatio: c.worst, margin: margin, direct: file.direct, samples: wall.count)
    }
}
