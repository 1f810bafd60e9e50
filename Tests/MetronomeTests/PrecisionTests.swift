import Foundation
import Metronome
import MetronomeModels
import XCTest

/// `--precision bf16` against the reference interpreter (fp32, unoptimised program): close
/// within bf16's rounding, yet measurably different from fp32 (so the bf16 kernels really ran).
final class PrecisionTests: XCTestCase {
    ///
    /// On a CPU without AVX-512 (``MachineInfo/bf16Kernels``) the bf16 compile must be refused
    /// with the reason instead; then it returns nil.
    func bf16Error(_ graph: Graph, batch: Int = 1) throws -> (bf16: Double, fp32: Double)? {
        let program = try Program(lowering: graph, batch: batch)
        guard MachineInfo.bf16Kernels else {
            XCTAssertThrowsError(try Plan.compile(program, options: CompileOptions(threads: 1, precision: .bf16))) {
                XCTAssertTrue("\($0)".contains("it needs AVX-512"), "\($0)")
            }
            return nil
        }
        let inputs = TestSupport.inputs(for: program, seed: 5)
        let expected = try TestSupport.reference(program, inputs)[0]
        let fp32 = try Executor(plan: Plan.compile(program, options: CompileOptions(threads: 1))).run(inputs)[0]
        let plan = try Plan.compile(program, options: CompileOptions(threads: 1, precision: .bf16))
        XCTAssertTrue(TestSupport.conflictingPairs(plan).isEmpty, "planned buffers conflict")
        let bf16 = try Executor(plan: plan).run(inputs)[0]
        XCTAssertEqual(bf16.shape, expected.shape)
        return (Double(bf16.relativeError(to: expected)), Double(fp32.relativeError(to: expected)))
    }

    /// ResNet-18 at 64×64 (convolutions, residual sums fused as post-ops, pooling, the classifier).
    func testResNet18InBF16() throws {
        guard let e = try bf16Error(Zoo.resNet(depth: 18, inputSize: 64)) else { return }
        XCTAssertLessThan(e.bf16, 3e-2, "bf16 within its rounding (8 bits of mantissa)")
        XCTAssertGreaterThan(e.bf16, 1e-4, "and not fp32: bf16 kernels ran")
        XCTAssertLessThan(e.fp32, 1e-4)
    }

    /// MobileNetV2 at 64×64, batch 2 (depthwise convolutions, ReLU6, inverted residuals). With
    /// seeded random weights its 52 convolutions amplify bf16's rounding (each rounding is up to
    /// 0.4%): 15% here; a wrong layout or a missing reorder is off by orders of magnitude more.
    /// With real weights the error is 1–3% (RealWeightsTests).
    func testMobileNetV2InBF16() throws {
        guard let e = try bf16Error(Zoo.mobileNetV2(inputSize: 64), batch: 2) else { return }
        XCTAssertLessThan(e.bf16, 0.3)
        XCTAssertGreaterThan(e.bf16, 1e-4)
    }
}
