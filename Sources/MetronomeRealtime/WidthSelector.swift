/// Run-time width selection for a task with `widths`: each job runs at the widest width whose
/// WCET, scaled by the current interference estimate, fits the time left before its deadline.
///
/// The estimate is an exponentially weighted mean (weight ``alpha``) of each finished job's
/// execution time over the profiled median of its width, never below 1: it rises at once when
/// jobs run slow and decays as they return to normal. Going narrower happens immediately;
/// going one width wider needs ``raiseAfter`` consecutive jobs in which the wider width
/// would have fitted with ``slack`` to spare — hysteresis, so the choice does not flap.
/// `on_overrun: degrade` also steps one width narrower. The real runner and the simulator
/// use this same type.
public struct WidthSelector: Sendable, Equatable {
    public static let alpha = 0.3
    public static let raiseAfter = 3
    public static let slack = 1.1

    /// WCET per width, narrowest first (what the analysis uses).
    public let wcets: [Int64]
    /// Profiled median execution per width, the reference for the interference estimate.
    public let medians: [Int64]
    /// The width index the next job runs at unless the time left says otherwise.
    public private(set) var current: Int
    public private(set) var inflation = 1.0
    private var streak = 0

    public init(wcets: [Int64], medians: [Int64]) {
        precondition(!wcets.isEmpty && wcets.count == medians.count, "one WCET and one median per width")
        self.wcets = wcets
        self.medians = medians
        current = wcets.count - 1
    }

    /// Whether width `w` fits `timeLeft` ns under the current estimate, with `factor` to spare.
    func fits(_ w: Int, _ timeLeft: Int64, factor: Double = 1) -> Bool {
        Double(wcets[w]) * inflation * factor <= Double(timeLeft)
    }

    /// The width index for a job with `timeLeft` ns before its deadline.
    public mutating func choose(timeLeft: Int64) -> Int {
        let fit = wcets.indices.last { fits($0, timeLeft) } ?? 0
        if fit < current {
            current = fit
            streak = 0
        } else if fit > current {
            streak = fits(current + 1, timeLeft, factor: Self.slack) ? streak + 1 : 0
            if streak >= Self.raiseAfter {
                current += 1
                streak = 0
            }
        } else {
            streak = 0
        }
        return current
    }

    /// A job at width `w` executed for `execution` ns.
    public mutating func observe(width w: Int, execution: Int64) {
        let ratio = max(1, Double(execution) / Double(max(medians[w], 1)))
        inflation = max(1, Self.alpha * ratio + (1 - Self.alpha) * inflation)
    }

    /// `on_overrun: degrade`: the following jobs run one width narrower.
    public mutating func degrade() {
        if current > 0 { current -= 1 }
        streak = 0
    }
}
