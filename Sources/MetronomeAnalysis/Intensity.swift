import Foundation
import Metronome
import MetronomeTransforms

/// One network variant in an arithmetic-intensity comparison.
public struct IntensityRow: Sendable, Equatable, Codable {
    /// `original`, `fold 2`, `compound phi=1`, ….
    public var variant: String
    public var fold: Int
    public var phi: Double
    /// Shape of one input (batch 1).
    public var inputShape: [Int]
    /// Inputs per inference: B for the original and compound-scaled variants, ⌊B/f⌋ folded.
    public var inputs: Int
    public var images: Int
    public var macsPerImage: Double
    public var flopsPerImage: Double
    public var params: Int
    /// Activation bytes (all layers' inputs and outputs) per image under the byte model.
    public var activationBytesPerImage: Double
    /// FLOPs / bytes over all layers (``CostReport/arithmeticIntensity``).
    public var arithmeticIntensity: Double
    /// FoldedCNNs' `ai.py` model: conv and fully connected layers only.
    public var convGemmArithmeticIntensity: Double

    enum CodingKeys: String, CodingKey {
        case variant, fold, phi, inputShape = "input_shape", inputs, images
        case macsPerImage = "macs_per_image", flopsPerImage = "flops_per_image", params
        case activationBytesPerImage = "activation_bytes_per_image"
        case arithmeticIntensity = "arithmetic_intensity"
        case convGemmArithmeticIntensity = "arithmetic_intensity_conv_gemm"
    }
}

/// The FoldedCNNs arithmetic-intensity comparison (`ai.py`): a network, its folded versions
/// and its compound-scaled versions, each at the batch the throughput sweep would run.
public enum IntensityStudy {
    public static func run(_ graph: Graph, batch: Int, folds: [Int], phis: [Double], elementSize: Int = 2,
                           seed: UInt64 = 0) throws -> [IntensityRow] {
        guard batch >= 1 else { throw MetronomeError.invalidArgument("batch must be at least 1, got \(batch)") }
        var rows: [IntensityRow] = []
        func add(_ variant: String, _ g: Graph, fold: Int, phi: Double, inputs: Int) throws {
            let r = try CostModel.analyze(g, batch: 1, elementSize: elementSize, plan: false)
            let b = Double(inputs)
            let activations = Double(r.layers.reduce(0) { $0 + $1.inputBytes + $1.outputBytes })
            rows.append(IntensityRow(
                variant: variant, fold: fold, phi: phi, inputShape: r.inputShapes.values.first ?? [],
                inputs: inputs, images: inputs * fold,
                macsPerImage: Double(r.macs) / Double(fold), flopsPerImage: Double(r.flops) / Double(fold),
                params: r.params, activationBytesPerImage: activations / Double(fold),
                arithmeticIntensity: r.arithmeticIntensity(atBatch: b),
                convGemmArithmeticIntensity: r.convGemmArithmeticIntensity(atBatch: b)))
        }
        try add("original", graph, fold: 1, phi: 0, inputs: batch)
        for f in folds where f > 1 {
            guard batch / f >= 1 else {
                throw MetronomeError.invalidArgument("batch \(batch) holds no complete group of \(f) images")
            }
            try add("fold \(f)", try fold(graph, factor: f, seed: seed).graph, fold: f, phi: 0, inputs: batch / f)
        }
        for phi in phis where phi > 0 {
            let g = try compoundScale(graph, CompoundScaling(phi: phi), seed: seed)
            try add("compound phi=\(phi == phi.rounded() ? String(Int(phi)) : String(phi))", g, fold: 1, phi: phi, inputs: batch)
        }
        return rows
    }
}
