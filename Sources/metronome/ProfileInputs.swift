import ArgumentParser
import Foundation
import MetronomeAnalysis

/// Profile CSVs given to `fit` and `evaluate`: read, checked to come from one machine, and
/// grouped into configurations with their kernel rows.
struct ProfileInputs: ParsableArguments {
    @Argument(help: "Profile CSVs written by `metronome profile --layers`.")
    var profiles: [String]

    @Flag(help: "Accept profiles from different machines (their kernels' speeds will be mixed).")
    var mixMachines = false

    @Option(help: "Which rows to learn from: inference, or train (training steps from `profile --stage train --layers`).")
    var stage: ProfileStage = .inference

    func validate() throws {
        guard !profiles.isEmpty else { throw ValidationError("give at least one profile CSV") }
        for p in profiles where !FileManager.default.fileExists(atPath: p) {
            throw ValidationError("\(p) does not exist")
        }
    }

    func configurations() throws -> [ProfiledConfiguration] {
        var records: [ProfileRecord] = []
        for p in profiles {
            do { records += try ProfileRecord.read(path: p) } catch { throw ValidationError("\(error)") }
        }
        let machines = Dictionary(grouping: records, by: \.machine.fingerprint)
        if machines.count > 1 && !mixMachines {
            let list = machines.map { "\($0.key) (\($0.value.first!.machine.cpuModel), oneDNN \($0.value.first!.machine.onednnVersion) \($0.value.first!.machine.onednnISA), \($0.value.count) rows)" }
                .sorted().joined(separator: "; ")
            throw ValidationError("the profiles come from \(machines.count) machines: \(list); a predictor is for one machine (pass --mix-machines to fit across them anyway)")
        }
        let configurations = ProfiledConfiguration.group(records, stage: stage.rawValue)
        guard !configurations.isEmpty else {
            let other = ProfiledConfiguration.group(records, stage: stage == .train ? "inference" : "train")
            let hint = other.isEmpty ? "profile with --layers" : "the profiles have \(stage == .train ? "inference" : "training-step") rows: pass --stage \(stage == .train ? "inference" : "train")"
            throw ValidationError("no successful \(stage.rawValue) configuration with kernel rows in \(profiles.joined(separator: ", ")); \(hint)")
        }
        return configurations
    }

    /// Other profile CSVs (`evaluate --test`, `--train-also`), read with these inputs' stage,
    /// as configurations used beside `configurations` (read from ``profiles``): refused when
    /// they come from another machine, unless --mix-machines. `purpose` says in the refusal
    /// what mixing machines would do.
    func configurations(of files: [String], beside configurations: [ProfiledConfiguration],
                        purpose: String) throws -> [ProfiledConfiguration] {
        var other = self
        other.profiles = files
        let result = try other.configurations()
        if !mixMachines && Set((configurations + result).map(\.model.machine.fingerprint)).count > 1 {
            throw ValidationError("\(files.joined(separator: ", ")) comes from another machine than \(profiles.joined(separator: ", ")); pass --mix-machines to \(purpose)")
        }
        return result
    }
}

/// The tree ensembles' settings, for `fit` and `evaluate`.
struct TreeOptions: ParsableArguments {
    @Option(help: "Boosting rounds per kernel family.") var rounds = BoostedTrees.Parameters().rounds
    @Option(help: "Maximum tree depth.") var depth = BoostedTrees.Parameters().maxDepth
    @Option(help: "Learning rate (eta).") var learningRate = BoostedTrees.Parameters().learningRate

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard (1...16).contains(depth) else { throw ValidationError("--depth must be between 1 and 16") }
        guard learningRate > 0 && learningRate <= 1 else { throw ValidationError("--learning-rate must be in (0, 1]") }
    }

    var parameters: BoostedTrees.Parameters {
        var p = BoostedTrees.Parameters()
        p.rounds = rounds
        p.maxDepth = depth
        p.learningRate = learningRate
        return p
    }
}
