import CDNNL
import Foundation

/// The machine and conditions a measurement was made under: CPU model and flags, oneDNN
/// version and the instruction set it dispatches to, the frequency governor and clock where
/// Linux exposes them, and Metronome's version.
///
/// `fingerprint` identifies the hardware/software combination that decides kernel speed
/// (CPU model, SIMD flags, logical CPU count, oneDNN version and ISA), so that profiles and
/// predictors from different machines are never mixed silently.
public struct MachineInfo: Codable, Equatable, Sendable {
    public var cpuModel: String
    /// The SIMD-relevant flags of /proc/cpuinfo (sse4_2, avx, avx2, fma, avx512*, amx*), sorted.
    public var cpuFlags: [String]
    public var logicalCPUs: Int
    public var onednnVersion: String
    /// The instruction set oneDNN's JIT targets here (`dnnl_get_effective_cpu_isa`).
    public var onednnISA: String
    /// `scaling_governor` of cpu0, or empty where cpufreq is not exposed (VMs, containers).
    public var governor: String
    /// The current clock of cpu0 in MHz (cpufreq, else /proc/cpuinfo), 0 when unknown.
    public var cpuMHz: Double
    public var kernel: String
    public var metronomeVersion: String
    public var fingerprint: String

    public init(cpuModel: String, cpuFlags: [String], logicalCPUs: Int, onednnVersion: String, onednnISA: String,
                governor: String, cpuMHz: Double, kernel: String, metronomeVersion: String, fingerprint: String) {
        self.cpuModel = cpuModel; self.cpuFlags = cpuFlags; self.logicalCPUs = logicalCPUs
        self.onednnVersion = onednnVersion; self.onednnISA = onednnISA; self.governor = governor; self.cpuMHz = cpuMHz
        self.kernel = kernel; self.metronomeVersion = metronomeVersion; self.fingerprint = fingerprint
    }

    /// Reads the machine this process runs on.
    public static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String? {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix(name) {
                if let colon = line.firstIndex(of: ":") {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        let model = field("model name") ?? "unknown"
        let interesting = ["sse4_2", "avx", "avx2", "fma", "f16c"]
        let flags = Set((field("flags") ?? "").split(separator: " ").map(String.init))
            .filter { interesting.contains($0) || $0.hasPrefix("avx512") || $0.hasPrefix("amx") || $0.hasPrefix("avx_vnni") }
            .sorted()
        var mhz = Double(field("cpu MHz") ?? "") ?? 0
        if let khz = readFirstLine("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").flatMap(Double.init) {
            mhz = khz / 1000
        }
        let v = dnnl_version().pointee
        let onednn = "\(v.major).\(v.minor).\(v.patch)"
        let isa = Self.isaName(dnnl_get_effective_cpu_isa())
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let identity = [model, flags.joined(separator: " "), String(cpus), onednn, isa].joined(separator: "|")
        return MachineInfo(cpuModel: model, cpuFlags: flags, logicalCPUs: cpus, onednnVersion: onednn, onednnISA: isa,
                           governor: readFirstLine("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") ?? "",
                           cpuMHz: mhz, kernel: release, metronomeVersion: MetronomeVersion.string,
                           fingerprint: Self.fnv1a(identity))
    }

    /// The largest weight magnitude whose 8-bit products oneDNN's pre-VNNI kernels add
    /// exactly: two products of a u8 activation (≤ 255) and a weight of magnitude ≤ 64 sum to
    /// at most 32,640, inside `vpmaddubsw`'s saturating 16 bits (32,767). 7-bit weights.
    public static let exactInt8WeightLimit: Float = 64

    /// Whether oneDNN's 8-bit kernels here add pairs of 8-bit products in 16 bits with
    /// saturation (`vpmaddubsw`): every instruction set before VNNI (SSE4.1, AVX2, AVX-512
    /// without VNNI). Such kernels are exact only for weights of magnitude
    /// ``exactInt8WeightLimit`` or less.
    public static var int8ProductsSaturate: Bool {
        let isa = dnnl_get_effective_cpu_isa()
        return [dnnl_cpu_isa_sse41, dnnl_cpu_isa_avx, dnnl_cpu_isa_avx2, dnnl_cpu_isa_avx512_mic,
                dnnl_cpu_isa_avx512_mic_4ops, dnnl_cpu_isa_avx512_core].contains(isa)
    }

    /// Whether oneDNN 2.6 has bf16 convolutions here: AVX-512 (native with avx512_bf16,
    /// emulated on avx512_core). Elsewhere `--precision bf16` is refused with that reason.
    public static var bf16Kernels: Bool {
        let core = dnnl_cpu_isa_avx512_core.rawValue
        return dnnl_get_effective_cpu_isa().rawValue & core == core
    }

    static func isaName(_ isa: dnnl_cpu_isa_t) -> String {
        switch isa {
        case dnnl_cpu_isa_sse41: return "sse41"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx512_mic: return "avx512_mic"
        case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        default: return "isa_0x" + String(isa.rawValue, radix: 16)
        }
    }

    /// 64-bit FNV-1a as 16 hex digits: a stable, dependency-free identifier (not a security hash).
    static func fnv1a(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

private func readFirstLine(_ path: String) -> String? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    let line = text.split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) }
    return line?.isEmpty == false ? line : nil
}
