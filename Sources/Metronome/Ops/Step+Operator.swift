/// The questions other modules (analysis, transforms) ask about a step; each is answered
/// by the step's operator in `Ops/`.
extension Step {
    /// This step's cost, as its operator counts it.
    public func cost(in program: Program) throws -> OperatorCost {
        try OperatorRegistry.of(self).cost(self, in: program)
    }

    /// How this step moves channels, as its operator describes it.
    public func channelBehaviour(in program: Program) throws -> ChannelBehaviour {
        try OperatorRegistry.of(self).channelBehaviour(self, in: program)
    }

    /// How this step's constants follow its channels, as its operator describes it.
    public func channelResize(in program: Program) throws -> ChannelResize {
        try OperatorRegistry.of(self).channelResize(self, in: program)
    }

    /// The sliding window of a convolution or pooling step; nil for other operators (and for
    /// a step no operator claims).
    public func window(in program: Program) -> KernelWindow? {
        (try? OperatorRegistry.of(self))?.window(self, in: program)
    }
}
