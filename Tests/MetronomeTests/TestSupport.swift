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
    static func inputs(for program: Program, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Tensor] {
        var rng = SplitMix64(seed: seed)
        return program.inputs.map { randomTensor(program.shape($0), &rng, range: range) }
    }

    static func reference(_ program: Program, _ inputs: [Tensor]) throws -> [Tensor] {
        try ReferenceRunner(program: program).run(inputs)
    }

    static func fast(_ program: Program, _ inputs: [Tensor], options: CompileOptions = CompileOptions(threads: 1)) throws -> [Tensor] {
        let plan = try Plan.compile(program, options: options)
        return try Executor(plan: plan).run(inputs)
    }

    /// The three compiled configurations every operator is checked in: oneDNN with all
    /// passes, oneDNN without passes, and reference kernels through the memory planner.
    static let configurations: [(String, CompileOptions)] = [
        ("onednn", CompileOptions(threads: 1)),
        ("onednn/no-passes", CompileOptions(threads: 1, optimization: .none)),
        ("reference-backend", CompileOptions(threads: 1, backend: .reference)),
    ]

    /// Sum of the bytes of every value a program computes (not constants, not inputs).
    static func activationBytes(_ program: Program) -> Int {
        program.values.indices
            .filter { !program.isConstant($0) && !program.inputs.contains($0) }
            .reduce(0) { $0 + program.values[$1].count * 4 }
    }

    /// No two planned buffers that are live at the same time share bytes.
    static func conflictingPairs(_ plan: Plan) -> [(Int, Int)] {
        var pairs: [(Int, Int)] = []
        let b = plan.buffers
        for i in b.indices {
            for j in (i + 1)..<b.count where b[i].conflicts(with: b[j]) { pairs.append((i, j)) }
        }
        return pairs
    }
}

/// Asserts two output lists agree to `tolerance` relative error, naming the case on failure.
func assertClose(_ actual: [Tensor], _ expected: [Tensor], tolerance: Float = TestSupport.tolerance,
                 _ label: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "output count \(label())", file: file, line: line)
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        XCTAssertEqual(a.shape, e.shape, "output \(i) shape \(label())", file: file, line: line)
        XCTAssertEqual(a.count, a.shape.reduce(1, *), "output \(i) element count \(label())", file: file, line: line)
        XCTAssertTrue(e.scalars.allSatisfy { $0.isFinite }, "reference output \(i) not finite \(label())", file: file, line: line)
        let err = a.relativeError(to: e)
        XCTAssertLessThanOrEqual(err, tolerance, "output \(i) relative error \(err) \(label())", file: file, line: line)
    }
}

/// Lowers `graph`, runs the *unoptimized* program with the reference interpreter, and checks
/// that every compiled configuration (see ``TestSupport/configurations``) agrees with it.
/// Returns the reference outputs.
@discardableResult
func checkAgainstReference(_ graph: Graph, batch: Int? = nil, seed: UInt64 = 1,
                           inputRange: ClosedRange<Float> = -1...1,
                           configurations: [(String, CompileOptions)] = TestSupport.configurations,
                           _ label: @autoclosure () -> String = "",
                           file: StaticString = #filePath, line: UInt = #line) throws -> [Tensor] {
    let program = try Program(lowering: graph, batch: batch)
    let inputs = TestSupport.inputs(for: program, seed: seed, range: inputRange)
    let expected = try TestSupport.reference(program, inputs)
    for (name, options) in configurations {
        let plan = try Plan.compile(program, options: options)
        let actual = try Executor(plan: plan).run(inputs)
        assertClose(actual, expected, "[\(name)] \(label())", file: file, line: line)
        let conflicts = TestSupport.conflictingPairs(plan)
        XCTAssertTrue(conflicts.isEmpty, "[\(name)] planned buffers conflict: \(conflicts) \(label())", file: file, line: line)
    }
    return expected
}
