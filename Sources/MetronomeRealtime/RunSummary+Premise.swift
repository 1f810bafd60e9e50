import Foundation

extension RunSummary {
    /// Jobs of tasks `analysis` called schedulable that missed their deadline or responded
    /// later than their bound, and how many of them ran while the analysis's premise was broken
    /// (see ``violationsPremiseBroken``): within the job's window a task sharing its cores ran a
    /// job past its analysed WCET or a layer past its analysed longest layer (the spans record
    /// every layer's end; a layer is a non-preemptive region), or an interference episode
    /// overlaps it.
    static func violations(_ result: RunResult, analysis: AnalysisResult?,
                           episodes detected: InterferenceDetector.Report) -> (violations: Int, premiseBroken: Int) {
        guard let analysis else { return (0, 0) }
        let set = result.taskSet
        var violations = 0, broken = 0
        // Where each task broke the analysis's inputs: jobs that ran past their analysed
        // WCET, and layers (non-preemptive regions) longer than the longest one analysed.
        let overran = result.records.enumerated().map { j, records in
            let wcet = analysis.tasks[j].wcet, npr = analysis.tasks[j].longestLayer
            var out = records.compactMap { r -> ClosedRange<Int64>? in
                guard let s = r.start, let e = r.end, r.execution > wcet else { return nil }
                return s...max(s, e)
            }
            for span in result.spans[j] where span.kind == .execution {
                var from = span.start
                for end in span.layerEnds {
                    if end - from > npr { out.append(from...end) }
                    from = end
                }
            }
            return out
        }
        for (i, records) in result.records.enumerated() where analysis.tasks[i].schedulable == true {
            let bound = analysis.tasks[i].bound ?? .max
            let cores = Set(set.cores(of: i))
            let sharing = set.tasks.indices.filter { !cores.isDisjoint(with: set.cores(of: $0)) }
            for r in records {
                let late = r.end.map { $0 - r.release > bound } ?? false
                guard !r.deadlineMet || late else { continue }
                violations += 1
                let to = r.end ?? (r.release + set.tasks[i].deadline)
                if detected.overlapsEpisode(from: r.release, to: to)
                    || sharing.contains(where: { j in overran[j].contains { $0.lowerBound <= to && r.release <= $0.upperBound } }) {
                    broken += 1
                }
            }
        }
        return (violations, broken)
    }
}
