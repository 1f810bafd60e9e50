/// How a branched program's steps are grouped for branch-parallel execution: a sequence of
/// segments, each a set of lanes that may run at the same time (one lane per device), with
/// the program's steps reordered so every lane is a contiguous run.
///
/// Steps of stage `s`'s branches that sit on different devices form the lanes of one
/// parallel segment; everything else (stem, merges, head, single-branch stages, steps
/// without a placement) runs in sequential segments on its device. A lane may only read
/// values computed before its segment or in the lane itself; a branch that reads another
/// branch's values of the same stage is an error naming both nodes.
struct BranchLayout {
    struct Segment {
        /// The step indices (into the reordered program) of each lane, and the lane's device index.
        var lanes: [(device: Int, steps: [Int])]
        var isParallel: Bool { lanes.count > 1 }
    }

    /// The program with its steps in lane order.
    var program: Program
    var segments: [Segment]
    /// For each step of `program`: its segment and lane.
    var stepLane: [(segment: Int, lane: Int)]

    init(_ original: Program, devices: DeviceCores) throws {
        let deviceIndex = Dictionary(devices.groups.enumerated().map { ($1.device, $0) }, uniquingKeysWith: { a, _ in a })
        func device(of p: BranchPlacement?, fallback: Int) throws -> Int {
            guard let p else { return fallback }
            guard let d = deviceIndex[p.device] else {
                throw MetronomeError.invalidArgument("--devices: the network places nodes on '\(p.device)', which has no cores (given: \(devices))")
            }
            return d
        }
        // Group the original steps: segments of (stage, device-keyed lanes) or sequential runs.
        struct Draft { var stage: Int?; var lanes: [(device: Int, steps: [Int])] }
        var drafts: [Draft] = []
        var lastDevice = 0
        for (i, step) in original.steps.enumerated() {
            let placement = BranchPlacement.parse(step.name)
            let d = try device(of: placement, fallback: lastDevice)
            if let p = placement, let s = p.stage, p.branch != nil {
                if drafts.last?.stage != s { drafts.append(Draft(stage: s, lanes: [])) }
                if let l = drafts[drafts.count - 1].lanes.firstIndex(where: { $0.device == d }) {
                    drafts[drafts.count - 1].lanes[l].steps.append(i)
                } else {
                    drafts[drafts.count - 1].lanes.append((d, [i]))
                }
            } else {
                lastDevice = d
                if let last = drafts.last, last.stage == nil, last.lanes[0].device == d {
                    drafts[drafts.count - 1].lanes[0].steps.append(i)
                } else {
                    drafts.append(Draft(stage: nil, lanes: [(d, [i])]))
                }
            }
        }
        // Consecutive one-lane segments on one device are one segment: every segment costs
        // a hand-over between threads.
        var joined: [Draft] = []
        for d in drafts {
            if d.lanes.count == 1, let last = joined.last, last.lanes.count == 1, last.lanes[0].device == d.lanes[0].device {
                joined[joined.count - 1].lanes[0].steps += d.lanes[0].steps
            } else {
                joined.append(d)
            }
        }
        drafts = joined
        // Check that lanes are independent, then lay them out one after another.
        var producer: [ValueID: Int] = [:]
        for (i, s) in original.steps.enumerated() { for v in s.outputs { producer[v] = i } }
        var laneOfOriginal: [Int: (Int, Int)] = [:]
        for (g, draft) in drafts.enumerated() {
            for (l, lane) in draft.lanes.enumerated() { for i in lane.steps { laneOfOriginal[i] = (g, l) } }
        }
        for (g, draft) in drafts.enumerated() where draft.lanes.count > 1 {
            for (l, lane) in draft.lanes.enumerated() {
                for i in lane.steps {
                    let step = original.steps[i]
                    var read = step.inputs
                    for case .add(let v) in step.postOps { read.append(v) }
                    for v in read {
                        guard let p = producer[v], let (pg, pl) = laneOfOriginal[p], pg == g, pl != l else { continue }
                        throw MetronomeError.invalidGraph(
                            "node '\(step.name)' (on \(devices.groups[lane.device].device)) reads '\(original.values[v].name)' from node '\(original.steps[p].name)' of another branch of the same stage (on \(devices.groups[draft.lanes[pl].device].device)); branches of a stage may only share the stage's input")
                    }
                }
            }
        }
        var order: [Int] = []
        var segments: [Segment] = []
        var stepLane: [(segment: Int, lane: Int)] = []
        for draft in drafts {
            var segment = Segment(lanes: [])
            for lane in draft.lanes {
                let indices = Array(order.count..<(order.count + lane.steps.count))
                for _ in indices { stepLane.append((segments.count, segment.lanes.count)) }
                segment.lanes.append((lane.device, indices))
                order += lane.steps
            }
            segments.append(segment)
        }
        var program = original
        program.steps = order.map { original.steps[$0] }
        self.program = program
        self.segments = segments
        self.stepLane = stepLane
    }
}
