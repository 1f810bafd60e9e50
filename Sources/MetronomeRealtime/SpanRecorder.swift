/// A worker's record of its jobs' execution spans and lock waits during a real run, in storage
/// allocated before the run: recording happens on the job path (layer-boundary callback and
/// job end), which must not allocate (``JobAllocationTests``). Only the task's own worker
/// writes to it; ``spans()`` builds the public values after the run.
///
/// When the storage is full the recorder stops and sets ``truncated`` rather than grow: the
/// trace then lacks the rest of the task's spans (or, when the layer-end store fills first, the
/// layer times of later spans), and the report and the trace say so.
final class SpanRecorder: @unchecked Sendable {
    /// A span whose cores live in the flat core store at `index · stride`.
    private struct Raw {
        var job: Int
        var kind: ExecutionSpan.Kind
        var start: Int64
        var end: Int64
        var firstLayer: Int
        var layers: Int
        var ending: ExecutionSpan.Ending
        var coreCount: Int
        /// The span's layer end times: `layerStore[layerOffset ..< layerOffset + layerEndCount]`.
        var layerOffset = 0
        var layerEndCount = 0
    }

    /// Spans per task never exceed this (about 30 MB per task at most), however long the run.
    static let maximumCapacity = 500_000
    /// Layer end times per task never exceed this (16 MB).
    static let maximumLayerCapacity = 2_000_000

    let task: Int
    let capacity: Int
    /// Cores stored per span: the most a job of the task can hold.
    let stride: Int
    private let raw: UnsafeMutablePointer<Raw>
    private let coreStore: UnsafeMutablePointer<Int>
    let layerCapacity: Int
    private let layerStore: UnsafeMutablePointer<Int64>
    private var layerCount = 0
    private var openLayerOffset = 0
    private(set) var count = 0
    private(set) var truncated = false
    /// Start and first layer of the execution span in progress, if one is open.
    private var openStart: Int64 = 0
    private var openFirstLayer = 0
    private var isOpen = false

    /// `layerCapacity`: layer end times in all (jobs × layers per job).
    init(task: Int, capacity: Int, coresPerSpan: Int, layerCapacity: Int) {
        self.task = task
        self.capacity = max(1, min(capacity, Self.maximumCapacity))
        stride = max(1, coresPerSpan)
        raw = .allocate(capacity: self.capacity)
        coreStore = .allocate(capacity: self.capacity * stride)
        coreStore.initialize(repeating: -1, count: self.capacity * stride)
        self.layerCapacity = max(1, min(layerCapacity, Self.maximumLayerCapacity))
        layerStore = .allocate(capacity: self.layerCapacity)
        layerStore.initialize(repeating: 0, count: self.layerCapacity)
    }

    deinit {
        raw.deallocate()
        coreStore.deallocate()
        layerStore.deallocate()
    }

    /// Room for `expectedJobs` jobs of a task whose jobs have `regions` layers: one execution
    /// span per job, or — when it can yield its cores (`preemptive`) or hand over its lock place
    /// at layer boundaries (`perLayerLock`) — up to `regions` of them (bounded at 32 per job,
    /// since more than 31 preemptions of one job are rare), and as many lock waits when the set
    /// has a lock.
    static func capacity(expectedJobs: Int, regions: Int, preemptive: Bool, lock: Bool, perLayerLock: Bool) -> Int {
        let executions = preemptive || perLayerLock ? min(max(regions, 1), 32) : 1
        let perJob = executions * (lock ? 2 : 1)
        let (n, overflow) = max(expectedJobs, 1).multipliedReportingOverflow(by: perJob)
        return overflow ? maximumCapacity : min(n, maximumCapacity)
    }

    private func append(_ span: Raw, cores: [Int]) {
        guard count < capacity else {
            truncated = true
            return
        }
        var s = span
        s.coreCount = min(cores.count, stride)
        let base = coreStore + count * stride
        for k in 0..<s.coreCount { base[k] = cores[k] }
        (raw + count).initialize(to: s)
        count += 1
    }

    /// The job starts computing at `time` from layer `firstLayer` on.
    func open(at time: Int64, firstLayer: Int) {
        openStart = time
        openFirstLayer = firstLayer
        openLayerOffset = layerCount
        isOpen = true
    }

    /// A layer of the open span ended at `time` (called at every layer boundary and at the
    /// end of the job's last layer).
    func layerEnd(at time: Int64) {
        guard layerCount < layerCapacity else {
            truncated = true
            return
        }
        layerStore[layerCount] = time
        layerCount += 1
    }

    /// The open execution span ends at `time`, before layer `layer` (the number of layers
    /// completed), on `cores`.
    func close(job: Int, at time: Int64, layer: Int, cores: [Int], ending: ExecutionSpan.Ending) {
        guard isOpen else { return }
        isOpen = false
        append(Raw(job: job, kind: .execution, start: openStart, end: time, firstLayer: openFirstLayer,
                   layers: layer - openFirstLayer, ending: ending, coreCount: 0, layerOffset: openLayerOffset,
                   layerEndCount: layerCount - openLayerOffset), cores: cores)
    }

    /// The job waited for the lock from `start` to `end`, holding `cores`.
    func lockWait(job: Int, from start: Int64, to end: Int64, cores: [Int]) {
        append(Raw(job: job, kind: .lockWait, start: start, end: end, firstLayer: 0, layers: 0, ending: .completed,
                   coreCount: 0), cores: cores)
    }

    /// The recorded spans as public values (allocates; call after the run).
    func spans() -> [ExecutionSpan] {
        (0..<count).map { k in
            let r = raw[k]
            let cores = (0..<r.coreCount).map { coreStore[k * stride + $0] }
            // All of the span's layer ends, or none (the store filled during the span).
            let ends = r.kind == .execution && r.layerEndCount == r.layers
                ? (0..<r.layerEndCount).map { layerStore[r.layerOffset + $0] } : []
            return ExecutionSpan(task: task, job: r.job, kind: r.kind, start: r.start, end: r.end, cores: cores,
                                 firstLayer: r.firstLayer, layers: r.layers, layerEnds: ends, ending: r.ending)
        }
    }
}
