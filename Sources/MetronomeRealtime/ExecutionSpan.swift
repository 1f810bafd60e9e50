/// One contiguous stretch of a job: computing on a set of cores, or waiting for the
/// k-exclusion lock. A job's record (``JobRecord``) has only its start and end; its spans say
/// where and when it actually ran in between — split wherever it yielded its cores at a layer
/// boundary or handed the lock over — so that per-core timelines (`report.html`,
/// `--trace-json`) show which job occupied which core when. Times are nanoseconds from the
/// common start of the run, like the records'. A job's first execution span starts at its
/// record's `start`; its last ends at the record's `end`, or in a set with a lock at
/// `lockReleased` (after which the job only records itself).
public struct ExecutionSpan: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// The job computed on `cores`.
        case execution
        /// The job waited for the k-exclusion lock (holding `cores` under a managed policy:
        /// the dispatcher had already granted them).
        case lockWait = "lock_wait"
    }

    /// Why an execution span ended (lock waits end with `.completed`: the wait is over).
    public enum Ending: String, Sendable, Equatable {
        /// The job finished, or (for a lock wait) the lock was granted.
        case completed
        /// The job yielded its cores to a higher-priority job at a layer boundary.
        case preempted
        /// The job kept its cores but handed its lock place to a higher-priority waiter at a
        /// layer boundary, and queued again.
        case lockHandover = "lock_handover"
    }

    public var task: Int
    public var job: Int
    public var kind: Kind
    public var start: Int64
    public var end: Int64
    /// The cores the job's threads were pinned to: the dispatcher's grant under a managed
    /// policy, the task's own cores under `unmanaged` (where the OS picks among them).
    public var cores: [Int]
    /// Index of the first layer (kernel or simulated region) run in this span.
    public var firstLayer: Int
    /// Layers completed in this span (0 for a lock wait).
    public var layers: Int
    /// When each of those layers ended: layer `firstLayer + k` ran from the previous entry (or
    /// `start`) to `layerEnds[k]`. Either `layers` entries or, where the runner's layer storage
    /// filled (``RunResult/spansTruncated``), none.
    public var layerEnds: [Int64]
    public var ending: Ending

    public init(task: Int, job: Int, kind: Kind, start: Int64, end: Int64, cores: [Int], firstLayer: Int = 0,
                layers: Int = 0, layerEnds: [Int64] = [], ending: Ending = .completed) {
        self.task = task
        self.job = job
        self.kind = kind
        self.start = start
        self.end = end
        self.cores = cores
        self.firstLayer = firstLayer
        self.layers = layers
        self.layerEnds = layerEnds
        self.ending = ending
    }

    public var duration: Int64 { end - start }
}
