import ArgumentParser
import Foundation
import Metronome
import MetronomeIO
import MetronomeONNX
import MetronomeTraining
import MetronomeTransforms

extension CalibrationMethod: ExpressibleByArgument {}
extension QuantizedType: ExpressibleByArgument {}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a float model to int8 (post-training, QDQ ONNX) from calibration inputs.",
        discussion: """
            Runs the float model on calibration inputs, chooses a range for the data input of every \
            convolution and fully connected layer (--method minmax: the whole observed range; \
            percentile: that percentile of the magnitudes; entropy: the threshold of least KL \
            divergence), folds batch norms into the convolutions before them, and writes the model in the standard QDQ form: QuantizeLinear/DequantizeLinear \
            on those inputs, symmetric int8 weights (per output channel with --per-channel), int32 \
            biases. Metronome runs it with oneDNN's int8 kernels with --precision int8 (fp32 computes \
            the same quantization in float); ONNX Runtime and OpenVINO run the same file.

            DATA is fashion-mnist[:train|:test], npy:IMAGES.npy,LABELS.npy, folder:DIR (one sub-folder \
            per class), an .npy batch [N, ...] of model inputs, or a directory of PNG/JPEG photographs \
            (resized and normalized as `classify` does). A fidelity report compares the quantized model \
            with the float one: top-1 agreement and logit error on the validation images (labelled data: \
            the test split or --validation, with both accuracies), else on the calibration inputs.
            """
    )

    @Argument(help: "A zoo model name or an .onnx file (float).") var model: String
    @Option(help: ArgumentHelp("Calibration inputs (see above).", valueName: "DATA")) var calibration: String
    @Option(help: ArgumentHelp("Where to write the quantized model.", valueName: "FILE.onnx")) var out: String
    @Option(help: "Range method: minmax, percentile or entropy.") var method: CalibrationMethod = .minmax
    @Option(help: "Percentile of magnitudes the percentile method keeps.") var percentile = 99.999
    @Flag(help: "One weight scale per output channel.") var perChannel = false
    @Flag(help: "7-bit weights ([-64, 64]): what CPUs without VNNI (AVX2, AVX-512 before VNNI) run on integer kernels; full-range layers run in float there.")
    var reduceRange = false
    @Option(help: "Activation type: uint8 (asymmetric, with a zero point) or int8 (symmetric).")
    var activations: QuantizedType = .uint8
    @Option(help: ArgumentHelp("Keep this layer (node name) in float; repeatable.", valueName: "NODE")) var keep: [String] = []
    @Option(help: "Calibration samples, taken evenly across the data.") var samples = 256
    @Option(help: "Images per calibration run.") var batch = 32
    @Option(help: ArgumentHelp("Labelled data for the fidelity report (default: the test split of fashion-mnist data, else the calibration inputs).", valueName: "DATA"))
    var validation: String?
    @Option(help: "Images the fidelity report uses at most.") var validationSamples = 1000
    @Option(help: "Threads.") var threads = 1
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "Replace --out if it exists.") var force = false

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard validationSamples >= 1 else { throw ValidationError("--validation-samples must be at least 1") }
        guard percentile > 0 && percentile <= 100 else { throw ValidationError("--percentile must be in (0, 100]") }
        guard activations != .int32 else { throw ValidationError("--activations is uint8 or int8") }
        guard out.hasSuffix(".onnx") else { throw ValidationError("--out must name an .onnx file") }
    }

    func run() throws {
        if !force && FileManager.default.fileExists(atPath: out) {
            throw MetronomeError.invalidArgument("\(out) already exists; pass --force to overwrite it")
        }
        // Batch norms after convolutions are folded first: the weights quantized are the ones
        // the integer kernel multiplies with.
        let graph = try BatchNormFolding.fold(ModelSource.load(model))
        guard graph.inputs.count == 1 else {
            throw MetronomeError.invalidArgument("\(model) has \(graph.inputs.count) inputs; quantize takes models with one input")
        }
        if (try? Program(lowering: graph, batch: 1))?.isQuantized == true {
            throw MetronomeError.invalidArgument("\(model) is already quantized (it has QuantizeLinear/DequantizeLinear nodes)")
        }
        var options = Quantizer.Options()
        options.method = method
        options.perChannel = perChannel
        options.reduceRange = reduceRange
        options.activationType = activations
        options.percentile = percentile
        options.keep = Set(keep)
        let quantizer = Quantizer(options: options)
        let tensors = try quantizer.calibratedTensors(graph)
        guard !tensors.isEmpty else {
            throw MetronomeError.invalidArgument("\(model) has no convolution or fully connected layer with constant weights to quantize")
        }
        let data = try CalibrationData.load(calibration, for: graph, samples: samples)
        let batches = try data.batches(of: batch)
        var bar = ProgressBar(total: batches.count * (method == .minmax ? 1 : 2))
        let statistics = try Calibrator(graph: graph, tensors: tensors, threads: threads).statistics(batches, method: method) { done, _ in
            bar.advance("calibration run \(done)")
        }
        let (quantized, layers) = try quantizer.quantize(graph, statistics: statistics)
        try ONNXExporter.write(quantized, to: URL(fileURLWithPath: out), overwrite: force)

        let check: CalibrationData
        if let validation {
            check = try CalibrationData.load(validation, for: graph, samples: validationSamples)
        } else if calibration.hasPrefix("fashion-mnist") {
            check = try CalibrationData.load("fashion-mnist:test", for: graph, samples: validationSamples)
        } else {
            check = data
        }
        let fidelity = try QuantizationFidelity.measure(float: graph, quantized: quantized, on: check, batch: batch, threads: threads)
        let report = QuantizeReport(model: model, out: out, method: method, perChannel: perChannel,
                                    activations: activations, calibrationSamples: data.count,
                                    layers: layers, kept: keep.sorted(), fidelity: fidelity)
        if json {
            print(try report.jsonText())
        } else {
            print(report.text)
        }
        if MachineInfo.int8ProductsSaturate && !reduceRange {
            FileHandle.standardError.write(Data("note: this CPU has no VNNI (oneDNN ISA \(MachineInfo.current().onednnISA)): its 8-bit kernels are exact only for weights within ±64, so layers with full-range weights run in float here; --reduce-range quantizes to 7-bit weights they take\n".utf8))
        }
    }
}
