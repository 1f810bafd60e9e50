import XCTest
import Metronome
import MetronomeModels

/// Shared helpers: random inputs, running a program both ways, and comparisons.
enum TestSupport {
    static let tolerance: Float = 1e-4

    static func randomTensor(_ shape: [Int], _ rng: inout SplitMix64, range: ClosedRange<Float> = -1...1) -> Tensor {
        Tensor(shape: shape, uniformIn: range, generator: &rng)
    }

    /// Random inputs for every program input.
    static func inputs(for program: Program, seed: UInt64) -> [Tensor] {
        var rng = SplitMix64(seed: seed)
        return program.inputs.map { randomTensor(program.shape($0), &rng) }
    }

    static func reference(_ program: Program, _ inputs: [Tensor]) throws -> [Tensor] {
        try ReferenceRunner(program: program).run(inputs)
    }

    static func fast(_ program: Program, _ inputs: [Tensor], options: CompileOptions = CompileOptions(threads: 1)) throws -> [Tensor] {
        let plan = try Plan.compile(program, options: options)
        return try Executor(plan: plan).run(inputs)
    }
}

/// Asserts two output lists agree to `tolerance` relative error, naming the case on failure.
func assertClose(_ actual: [Tensor], _ expected: [Tensor], tolerance: Float = TestSupport.tolerance,
                 _ label: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "output count \(label())", file: file, line: line)
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        XCTAssertEqual(a.shape, e.shape, "output \(i) shape \(label())", file: file, line: line)
        let err = a.relativeError(to: e)
        XCTAssertLessThanOrEqual(err, tolerance, "output \(i) relative error \(err) \(label())", file: file, line: line)
        XCTAssertTrue(e.scalars.allSatisfy { $0.isFinite }, "reference output \(i) not finite \(label())", file: file, line: line)
    }
}
