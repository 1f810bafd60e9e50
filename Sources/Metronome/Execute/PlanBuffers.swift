/// Input and output buffers sized for a plan, inputs filled with seeded uniform values:
/// what a benchmark, a sweep or a real-time task needs to run a plan on synthetic data.
/// The pointer lists are built once, so passing them to ``Executor/run(inputs:outputs:)``
/// allocates nothing.
public final class PlanBuffers: @unchecked Sendable {
    public let inputs: [UnsafeMutableBufferPointer<Float>]
    public let outputs: [UnsafeMutableBufferPointer<Float>]
    public let inputPointers: [UnsafePointer<Float>]
    public let outputPointers: [UnsafeMutablePointer<Float>]

    public init(plan: Plan, generator: inout SplitMix64, range: ClosedRange<Float> = -1...1) {
        inputs = plan.program.inputs.map { id in
            let n = plan.program.values[id].count
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(n, 1))
            for i in 0..<n { b[i] = generator.nextFloat(in: range) }
            return b
        }
        outputs = plan.program.outputs.map {
            UnsafeMutableBufferPointer<Float>.allocate(capacity: max(plan.program.values[$0].count, 1))
        }
        inputPointers = inputs.map { UnsafePointer($0.baseAddress!) }
        outputPointers = outputs.map { $0.baseAddress! }
    }

    deinit {
        inputs.forEach { $0.deallocate() }
        outputs.forEach { $0.deallocate() }
    }
}

extension Executor {
    /// Runs `warmup` untimed iterations, then `runs` timed ones on the monotonic clock;
    /// returns each timed run's duration in milliseconds.
    public func timedRuns(_ runs: Int, warmup: Int, on buffers: PlanBuffers) throws -> [Double] {
        try timedRuns(atLeast: runs, seconds: 0, warmup: warmup, on: buffers)
    }

    /// Runs `warmup` untimed iterations and then timed ones until at least `runs` are done
    /// *and* `minimumSeconds` have passed (at most `maximumRuns`); returns each timed run's
    /// duration in milliseconds.
    ///
    /// A fixed count is a different measurement for every model: 15 runs of a 0.1 ms network
    /// last 1.5 ms, shorter than a scheduler tick, so one preemption or a core's clock ramp
    /// moves its median by tens of percent. A time floor gives small models as many samples as
    /// they need for a stable median and costs large ones nothing.
    public func timedRuns(atLeast runs: Int, seconds minimumSeconds: Double, maximumRuns: Int = 100_000,
                          warmup: Int, on buffers: PlanBuffers) throws -> [Double] {
        let warmupEnd = MonotonicClock.now() + UInt64(max(0, minimumSeconds) * 0.2e9)
        var warmed = 0
        while warmed < warmup || MonotonicClock.now() < warmupEnd {
            try run(inputs: buffers.inputPointers, outputs: buffers.outputPointers)
            warmed += 1
        }
        return try MonotonicClock.timeRepeatedly(atLeast: runs, seconds: minimumSeconds, maximumRuns: maximumRuns) {
            try run(inputs: buffers.inputPointers, outputs: buffers.outputPointers)
        }
    }
}
