import ArgumentParser
import Foundation
import Metronome
import MetronomeIO

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on NumPy .npy inputs and write its outputs as .npy files.",
        discussion: """
            Inputs and outputs are float32, little-endian, C-order .npy files; anything else is \
            rejected. Symbolic input dimensions (a dynamic batch) take the shapes of the given \
            arrays. Existing output files are not replaced without --force.
            """
    )

    @Argument(help: "A zoo model name or an .onnx file.") var model: String
    @Option(name: .long, help: ArgumentHelp("An input: FILE.npy for a single-input model, or NAME=FILE.npy (repeat for several inputs).", valueName: "[NAME=]FILE"))
    var input: [String] = []
    @Option(name: .long, help: ArgumentHelp("Where to write an output: FILE.npy for a single-output model, or NAME=FILE.npy (repeat for several outputs).", valueName: "[NAME=]FILE"))
    var output: [String] = []
    @Option(help: "Threads per inference.") var threads = 1
    @Option(help: "Kernel backend: onednn or reference.") var backend = "onednn"
    @Option(help: "Precision of the convolutions: fp32, bf16 or int8 (int8: a quantized QDQ model; inputs and outputs stay fp32).")
    var precision: Precision = .fp32
    @Flag(help: "Replace output files that exist.") var force = false
    @OptionGroup var branches: BranchOptions

    func validate() throws {
        guard !output.isEmpty else { throw ValidationError("give at least one --output") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard Backend(rawValue: backend) != nil else { throw ValidationError("--backend must be onednn or reference") }
    }

    /// Splits `NAME=FILE` when NAME is one of `names`; otherwise the whole text is a file.
    static func split(_ spec: String, names: [String]) -> (name: String?, path: String) {
        if let eq = spec.firstIndex(of: "="), names.contains(String(spec[..<eq])) {
            return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
        }
        return (nil, spec)
    }

    /// Pairs each spec with a name from `names`; an unnamed spec is allowed only when there is one name.
    static func assign(_ specs: [String], names: [String], what: String) throws -> [(name: String, path: String)] {
        var result: [(String, String)] = []
        for spec in specs {
            let (name, path) = split(spec, names: names)
            if let name {
                guard !result.contains(where: { $0.0 == name }) else { throw MetronomeError.invalidArgument("\(what) '\(name)' is given twice") }
                result.append((name, path))
            } else {
                guard names.count == 1, specs.count == 1 else {
                    throw MetronomeError.invalidArgument("the model has \(names.count) \(what)s (\(names.joined(separator: ", "))); name each one as --\(what) NAME=FILE.npy")
                }
                result.append((names[0], path))
            }
        }
        return result
    }

    func run() throws {
        var zooGraph: Graph? = nil
        let inputNames: [String]
        if ModelSource.isFile(model) {
            inputNames = try ModelSource.inputNames(model)
        } else {
            zooGraph = try ModelSource.load(model)
            inputNames = zooGraph!.inputs.map(\.name)
        }
        let inputs = try Self.assign(input, names: inputNames, what: "input")
        let missing = inputNames.filter { n in !inputs.contains { $0.name == n } }
        guard missing.isEmpty else {
            throw MetronomeError.invalidArgument("no --input for the model input(s) \(missing.joined(separator: ", "))")
        }
        var tensors: [String: Tensor] = [:]
        for (name, path) in inputs { tensors[name] = try NPY.read(URL(fileURLWithPath: path)) }
        let shapes = tensors.mapValues(\.shape)
        let graph = try zooGraph ?? ModelSource.load(model, inputShapes: shapes)
        if let note = graph.precisionNote(precision, model: model) { FileHandle.standardError.write(Data(note.utf8)) }
        let outputs = try Self.assign(output, names: graph.outputs, what: "output")
        if !force {
            for (_, path) in outputs where FileManager.default.fileExists(atPath: path) {
                throw MetronomeError.invalidArgument("\(path) already exists; pass --force to overwrite it")
            }
        }
        if precision != .fp32 && backend != "onednn" { throw ValidationError("--precision \(precision.rawValue) needs --backend onednn") }
        let plan = try Plan.compile(graph, inputShapes: shapes,
                                    options: CompileOptions(threads: threads, backend: Backend(rawValue: backend)!, precision: precision,
                                                            devices: branches.deviceCores(for: graph)))
        let executor = try Executor(plan: plan)
        let ordered = try plan.inputNames.map { name -> Tensor in
            guard let t = tensors[name] else { throw MetronomeError.missingInput(name) }
            return t
        }
        let results = try executor.run(ordered)
        for (name, path) in outputs {
            guard let i = graph.outputs.firstIndex(of: name) else { throw MetronomeError.invalidArgument("the model has no output '\(name)'") }
            try NPY.write(results[i], to: URL(fileURLWithPath: path), overwrite: force)
            print("wrote \(path): output '\(name)' of shape \(results[i].shape)")
        }
    }
}
