import ArgumentParser
import Foundation
import Metronome
import MetronomeModels

/// Number formatting and argument parsing shared by the analysis commands
/// (summary, slim, fold, sweep, ai).
enum Units {
    /// 1234567 → "1.235 M"; counts of operations or parameters.
    static func count(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e9 { return String(format: "%.3f G", v / 1e9) }
        if a >= 1e6 { return String(format: "%.3f M", v / 1e6) }
        if a >= 1e3 { return String(format: "%.3f k", v / 1e3) }
        return String(format: "%.0f", v)
    }

    static func count(_ v: Int) -> String { count(Double(v)) }

    static func bytes(_ v: Int) -> String { ByteCountText.format(v) }

    static func shape(_ s: [Int]) -> String { s.map { $0 < 0 ? "N" : String($0) }.joined(separator: "x") }

    static func pad(_ s: String, _ w: Int) -> String {
        s.count >= w ? String(s.prefix(w)) : s + String(repeating: " ", count: w - s.count)
    }

    static func lpad(_ s: String, _ w: Int) -> String {
        s.count >= w ? s : String(repeating: " ", count: w - s.count) + s
    }
}

enum ArgumentLists {
    /// "1,2,4" → [1, 2, 4].
    static func ints(_ s: String, option: String) throws -> [Int] {
        try list(s, option: option, kind: "integers")
    }

    static func doubles(_ s: String, option: String) throws -> [Double] {
        try list(s, option: option, kind: "numbers")
    }

    /// A comma-separated list in which every item must parse; `kind` names them in the error.
    private static func list<T: LosslessStringConvertible>(_ s: String, option: String, kind: String) throws -> [T] {
        let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { T($0) }
        guard !parts.isEmpty, values.count == parts.count else {
            throw ValidationError("\(option) must be a comma-separated list of \(kind), got '\(s)'")
        }
        return values
    }

    /// `--amounts` of `metronome dataset`: "START:STOP:STEP" (STOP included when the steps land
    /// on it within 1e-9) or a comma list. Values are rounded to 1e-9 so that 0.05·3 is 0.15,
    /// not 0.15000000000000002, and repeated values are refused because they would name the
    /// same variant file twice.
    static func amounts(_ s: String) throws -> [Double] {
        var values: [Double]
        if s.contains(":") {
            let parts = s.split(separator: ":", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 3, let start = parts[0], let stop = parts[1], let step = parts[2] else {
                throw ValidationError("--amounts must be START:STOP:STEP (e.g. 0:0.9:0.05) or a comma list, got '\(s)'")
            }
            guard step > 0, stop >= start else {
                throw ValidationError("--amounts \(s): STEP must be positive and STOP at least START")
            }
            let n = Int(((stop - start) / step + 1e-9).rounded(.down))
            guard n < 100_000 else { throw ValidationError("--amounts \(s) gives \(n + 1) amounts; at most 100000") }
            values = (0...n).map { start + Double($0) * step }
        } else {
            values = try doubles(s, option: "--amounts")
        }
        values = values.map { ($0 * 1e9).rounded() / 1e9 }
        for v in values where !(v >= 0 && v < 1) {
            throw ValidationError("--amounts: every amount must be in [0, 1), got \(v) from '\(s)'")
        }
        if Set(values).count != values.count { throw ValidationError("--amounts '\(s)' repeats an amount") }
        return values
    }

    /// "224x160" or "224" → (224, 160) or (224, 224).
    static func size(_ s: String) throws -> (Int, Int) {
        let parts = s.lowercased().split(separator: "x").map { Int($0) }
        if parts.count == 1, let v = parts[0], v > 0 { return (v, v) }
        guard parts.count == 2, let h = parts[0], let w = parts[1], h > 0, w > 0 else {
            throw ValidationError("--input-size must be HxW (e.g. 224x224) or one number, got '\(s)'")
        }
        return (h, w)
    }

    /// Model names with the group aliases `game`, `noscope` and `specialized` expanded, and
    /// `sampled:N` as the sampled architectures `sampled-0` … `sampled-(N-1)`.
    static func models(_ s: String) -> [String] {
        s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { name -> [String] in
            if name.hasPrefix("sampled:"), let n = Int(name.dropFirst("sampled:".count)), n >= 1, n <= 100_000 {
                return (0..<n).map { "\(SampledNetworks.prefix)\($0)" }
            }
            switch name {
            case "game": return SpecializedCNNs.gameTasks.map(\.name)
            case "noscope": return SpecializedCNNs.noScopeTasks.map(\.name)
            case "specialized": return SpecializedCNNs.gameTasks.map(\.name) + SpecializedCNNs.noScopeTasks.map(\.name)
            default: return [name]
            }
        }
    }
}

/// Refuses to replace an existing file unless forced.
func checkWritable(_ path: String, force: Bool) throws {
    if !force && FileManager.default.fileExists(atPath: path) {
        throw ValidationError("\(path) already exists; pass --force to overwrite it")
    }
}
