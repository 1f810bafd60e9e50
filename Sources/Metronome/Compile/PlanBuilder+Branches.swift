#if canImport(Glibc)
import Glibc
#endif
import CDNNL

/// Branch-parallel compilation: each lane's primitives are created for its device's thread
/// count, and reordered copies are never shared between lanes.
extension PlanBuilder {
    /// Switches to the lane of step `i` (no-op without a branch layout).
    mutating func enterLane(of i: Int) {
        guard let layout, let devices = options.devices else { return }
        let lane = layout.stepLane[i]
        if let c = currentLane, c == lane { return }
        currentLane = lane
        // A reorder made in another lane may not have run yet (or may run at the same time).
        variants = [:]
        let device = layout.segments[lane.segment].lanes[lane.lane].device
        omp_set_num_threads(Int32(devices.groups[device].cores.count))
    }

    /// The plan's lanes as kernel ranges; the final copies into the caller's outputs join the
    /// last sequential segment (or form one on the last segment's first device).
    func branchSchedule(kernelSteps: [Int?]) -> BranchSchedule? {
        guard let layout, let devices = options.devices else { return nil }
        var ranges = layout.segments.map { $0.lanes.map { _ in Int.max..<Int.max } }
        for (k, step) in kernelSteps.enumerated() {
            guard let step else { continue }
            let (s, l) = layout.stepLane[step]
            let r = ranges[s][l]
            ranges[s][l] = r.lowerBound == Int.max ? k..<(k + 1) : r.lowerBound..<(k + 1)
        }
        var segments: [[BranchSchedule.Lane]] = []
        var end = 0
        for (s, segment) in layout.segments.enumerated() {
            var lanes: [BranchSchedule.Lane] = []
            for (l, lane) in segment.lanes.enumerated() {
                let group = devices.groups[lane.device]
                let r = ranges[s][l].lowerBound == Int.max ? end..<end : ranges[s][l]
                lanes.append(BranchSchedule.Lane(device: group.device, cores: group.cores, kernels: r))
                end = max(end, r.upperBound)
            }
            segments.append(lanes)
        }
        if end < kernelSteps.count {
            if let last = segments.last, last.count == 1, last[0].kernels.upperBound == end {
                segments[segments.count - 1][0].kernels = last[0].kernels.lowerBound..<kernelSteps.count
            } else {
                let group = segments.last?.first.map { devices.group($0.device)! } ?? devices.groups[0]
                segments.append([BranchSchedule.Lane(device: group.device, cores: group.cores, kernels: end..<kernelSteps.count)])
            }
        }
        return BranchSchedule(segments: segments, devices: devices)
    }
}
