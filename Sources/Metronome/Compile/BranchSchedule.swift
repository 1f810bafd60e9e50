/// Which kernels of a branch-parallel plan run where and when: segments run one after
/// another; the lanes of a segment run at the same time, each on its device's cores with as
/// many threads as the group has cores, and join before the next segment starts.
public struct BranchSchedule: Sendable, Equatable {
    public struct Lane: Sendable, Equatable {
        public var device: String
        public var cores: [Int]
        /// The kernel indices (in run order) the lane executes.
        public var kernels: Range<Int>
        public var threads: Int { cores.count }
    }

    public var segments: [[Lane]]
    public var devices: DeviceCores

    /// Segments with more than one lane.
    public var parallelSegments: [[Lane]] { segments.filter { $0.count > 1 } }

    /// Whether two buffers alive over kernel spans `x` and `y` (in run order) may hold live
    /// data at the same moment: their spans overlap, or each touches a different lane of
    /// one parallel segment (the lanes run at once, so run order says nothing about time).
    public func mayBeLiveTogether(_ x: BufferLifetime, _ y: BufferLifetime) -> Bool {
        if x.overlaps(y) { return true }
        for segment in segments where segment.count > 1 {
            func lanes(_ l: BufferLifetime) -> [Int] {
                segment.indices.filter { !segment[$0].kernels.isEmpty && l.first < segment[$0].kernels.upperBound && segment[$0].kernels.lowerBound <= l.last }
            }
            let lx = lanes(x), ly = lanes(y)
            if lx.contains(where: { a in ly.contains { $0 != a } }) { return true }
        }
        return false
    }
}
