import Foundation

/// Package energy from Linux powercap (RAPL: `/sys/class/powercap/intel-rapl:N/energy_uj`,
/// which AMD processors expose too), summed over packages, with counter wrap-around handled.
/// `reason` says why there is no reading when the machine does not expose it or the file
/// is not readable (recent kernels make it root-only).
public struct EnergyMeter: Sendable {
    struct Zone: Sendable {
        var path: String
        var range: UInt64
    }

    let zones: [Zone]

    /// A meter, or the reason there is none.
    public static func open(root: String = "/sys/class/powercap") -> (meter: EnergyMeter?, reason: String?) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: root) else {
            return (nil, "\(root) does not exist (no powercap/RAPL interface on this machine or in this container)")
        }
        // Package zones are intel-rapl:N; their subzones (intel-rapl:N:M) are parts of them.
        let packages = names.filter { $0.hasPrefix("intel-rapl:") && $0.split(separator: ":").count == 2 }.sorted()
        guard !packages.isEmpty else { return (nil, "\(root) has no intel-rapl package zone") }
        var zones: [Zone] = []
        for p in packages {
            let path = "\(root)/\(p)/energy_uj"
            guard read(path) != nil else {
                return (nil, "\(path) is not readable (it is root-only on recent kernels)")
            }
            zones.append(Zone(path: path, range: read("\(root)/\(p)/max_energy_range_uj") ?? UInt64.max))
        }
        return (EnergyMeter(zones: zones), nil)
    }

    static func read(_ path: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The counters now (µJ), one per package.
    public func sample() -> [UInt64] { zones.map { Self.read($0.path) ?? 0 } }

    /// Joules between two samples.
    public func joules(from a: [UInt64], to b: [UInt64]) -> Double {
        var total = 0.0
        for (z, (x, y)) in zip(zones, zip(a, b)) {
            let delta = y >= x ? y - x : (z.range - x) + y
            total += Double(delta)
        }
        return total / 1e6
    }
}
