import ArgumentParser
import Metronome

@main
struct MetronomeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metronome",
        abstract: "Fast, predictable CNN inference on shared processors.",
        version: MetronomeVersion.string,
        subcommands: [RunTaskSet.self, Analyze.self, Simulate.self, Runs.self, Bench.self, Export.self, Models.self, Infer.self, Classify.self,
                      Summary.self, Slim.self, Prune.self, Dataset.self, Profile.self, ProfileWorker.self, Fit.self, Predict.self, Evaluate.self, Fold.self, Sweep.self, AI.self, SwapStudy.self,
                      Branch.self, Stretch.self, Train.self, Accuracy.self, Quantize.self]
    )
}
