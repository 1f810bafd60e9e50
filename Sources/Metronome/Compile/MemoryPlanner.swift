/// When a buffer is needed: written first by kernel `first`, read last by kernel `last`.
public struct BufferLifetime: Equatable, Sendable {
    public var size: Int
    public var first: Int
    public var last: Int

    public init(size: Int, first: Int, last: Int) {
        self.size = size
        self.first = first
        self.last = last
    }

    public func overlaps(_ other: BufferLifetime) -> Bool {
        first <= other.last && other.first <= last
    }
}

/// Places buffers in one arena so that buffers alive at the same time never share bytes.
///
/// Greedy by size (largest first), each buffer goes into the lowest aligned gap left by the
/// already placed buffers whose lifetimes overlap it — the strategy TFLite's and MNN's
/// arena planners use; it is within a few percent of optimal on CNN chains.
public enum MemoryPlanner {
    ///
    /// `liveTogether` says whether two buffers may hold live data at the same moment; by
    /// default, whether their kernel spans overlap. A branch-parallel plan passes
    /// ``BranchSchedule/mayBeLiveTogether(_:_:)``, since its lanes run at once.
    public static func plan(_ buffers: [BufferLifetime], alignment: Int = 64,
                            liveTogether: (BufferLifetime, BufferLifetime) -> Bool = { $0.overlaps($1) })
        -> (offsets: [Int], arenaBytes: Int) {
        func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        let order = buffers.indices.sorted {
            (buffers[$0].size, buffers[$1].first) > (buffers[$1].size, buffers[$0].first)
        }
        var offsets = Array(repeating: 0, count: buffers.count)
        var placed: [Int] = []
        var arena = 0
        for i in order {
            let b = buffers[i]
            let conflicts = placed.filter { liveTogether(buffers[$0], b) }.sorted { offsets[$0] < offsets[$1] }
            var candidate = 0
            for j in conflicts {
                if offsets[j] >= candidate + b.size { break }
                candidate = max(candidate, align(offsets[j] + buffers[j].size))
            }
            offsets[i] = candidate
            placed.append(i)
            arena = max(arena, align(candidate + b.size))
        }
        return (offsets, arena)
    }
}
