import ArgumentParser
import Foundation
import Metronome
import MetronomeIO

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify photographs with an ImageNet model and print the top classes.",
        discussion: """
            Decodes PNG and JPEG files (libpng, libjpeg-turbo), resizes the shorter side to 256 \
            pixels (bilinear with antialiasing), center-crops 224x224, normalizes with the ImageNet \
            mean and standard deviation, runs the model and prints the most probable classes. \
            The default model, efficientnet-lite0, carries real ImageNet weights (`make weights`).
            """
    )

    @Argument(help: "PNG or JPEG images.") var images: [String]
    @Option(help: "A zoo model name or an .onnx file with a [N, 3, 224, 224] input and 1000 outputs.")
    var model = "efficientnet-lite0"
    @Option(help: "How many classes to print per image.") var top = 5
    @Option(help: "Threads per inference.") var threads = 1
    @Option(help: ArgumentHelp("Also write the preprocessed input tensor (one image only).", valueName: "FILE.npy"))
    var saveInput: String?
    @Option(help: ArgumentHelp("Also write the model's raw output (one image only).", valueName: "FILE.npy"))
    var saveOutput: String?
    @Flag(help: "Replace files given to --save-input/--save-output that exist.") var force = false
    @Option(help: "Precision of the convolutions: fp32, bf16 or int8 (int8: a quantized QDQ model; reduced precision also prints the fp32 top class and the logits' relative error).")
    var precision: Precision = .fp32

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if (saveInput != nil || saveOutput != nil) && images.count != 1 {
            throw ValidationError("--save-input and --save-output take one image")
        }
    }

    func run() throws {
        if !force {
            for path in [saveInput, saveOutput].compactMap({ $0 }) where FileManager.default.fileExists(atPath: path) {
                throw MetronomeError.invalidArgument("\(path) already exists; pass --force to overwrite it")
            }
        }
        // Decode everything first, so a bad file fails before the model is compiled.
        let preprocess = ImagePreprocessor()
        let tensors = try images.map { try preprocess(ImageDecoder.load(URL(fileURLWithPath: $0))) }
        let graph = try ModelSource.load(model, inputShapes: [:])
        guard graph.inputs.count == 1 else {
            throw MetronomeError.invalidArgument("\(model) has \(graph.inputs.count) inputs; classify needs a model with one image input")
        }
        let shapes = [graph.inputs[0].name: [1, 3, preprocess.crop, preprocess.crop]]
        let plan = try Plan.compile(graph, inputShapes: shapes, options: CompileOptions(threads: threads, precision: precision))
        // Reduced precision: the fp32 plan beside it, for the fidelity line of each image.
        let reference = precision == .fp32 ? nil : try Executor(plan: Plan.compile(graph, inputShapes: shapes, options: CompileOptions(threads: threads)))
        guard let outShape = plan.program.outputs.first.map(plan.program.shape), outShape.reduce(1, *) > 1 else {
            throw MetronomeError.invalidArgument("\(model) has no class-score output")
        }
        let classes = outShape.reduce(1, *)
        let names = classes == ImageNetClasses.names.count ? ImageNetClasses.names : nil
        let executor = try Executor(plan: plan)
        for (path, tensor) in zip(images, tensors) {
            let scores = try executor.run([tensor])[0]
            if let saveInput { try NPY.write(tensor, to: URL(fileURLWithPath: saveInput), overwrite: force) }
            if let saveOutput { try NPY.write(scores, to: URL(fileURLWithPath: saveOutput), overwrite: force) }
            let probabilities = Self.probabilities(scores.scalars)
            print(path)
            let ranked = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.prefix(top)
            for (rank, c) in ranked.enumerated() {
                let label = names?[c] ?? "class \(c)"
                print("  \(rank + 1). \(label) (\(c))  \(String(format: "%.4f", probabilities[c]))")
            }
            if let reference {
                let fp32Scores = try reference.run([tensor])[0]
                let fp32 = fp32Scores.scalars
                let top32 = fp32.indices.max { fp32[$0] < fp32[$1] }!
                let err = scores.relativeError(to: fp32Scores)
                print("  \(precision.rawValue) vs fp32: top-1 \(top32 == ranked.first ? "same" : "DIFFERS (fp32: \(names?[top32] ?? "class \(top32)"))"), logits' max relative error \(String(format: "%.2e", err))")
            }
        }
    }

    /// Softmax of the scores, unless they already are probabilities (a model ending in Softmax).
    static func probabilities(_ scores: [Float]) -> [Float] {
        let sum = scores.reduce(0, +)
        if scores.allSatisfy({ $0 >= 0 && $0 <= 1 }) && abs(sum - 1) < 1e-3 { return scores }
        let m = scores.max() ?? 0
        let e = scores.map { expf($0 - m) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }
}
