/// Per-kernel timing, for per-layer profiles (`bench --layers`, `profile --layers`).
extension Executor {
    /// Runs the plan `warmup + runs` times and returns, for each kernel in run order, its
    /// `runs` durations in milliseconds.
    ///
    /// The stream is waited on between kernels (the same boundary the real-time runtime uses
    /// for preemption), so each interval holds exactly one kernel's work; the sum of a run's
    /// intervals is that run's latency plus the boundary overhead, which is why model-level
    /// latency is measured in separate, uninstrumented runs.
    public func kernelTimes(runs: Int, warmup: Int, on buffers: PlanBuffers) throws -> [[Double]] {
        guard plan.schedule == nil else {
            throw MetronomeError.invalidArgument("per-kernel times need kernels run one after another; this plan runs branches in parallel (compile it without devices)")
        }
        let count = plan.kernelCount
        var samples = [[Double]](repeating: [], count: count)
        for i in samples.indices { samples[i].reserveCapacity(runs) }
        var stamps = [UInt64](repeating: 0, count: count + 1)
        for run in 0..<(warmup + runs) {
            stamps[0] = MonotonicClock.now()
            try self.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers) { k in
                stamps[k] = MonotonicClock.now()
            }
            stamps[count] = MonotonicClock.now()
            guard run >= warmup else { continue }
            for k in 0..<count { samples[k].append(Double(stamps[k + 1] - stamps[k]) / 1e6) }
        }
        return samples
    }
}
