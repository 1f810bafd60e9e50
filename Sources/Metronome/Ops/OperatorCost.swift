/// An operator's answer to the cost model for one step (the counting rules are listed in
/// `MetronomeAnalysis/CostModel.swift` and the README's cost-model section; each operator
/// file applies them).
public struct OperatorCost: Sendable, Equatable {
    public var category: CostCategory
    /// Multiply-accumulates (convolution, Gemm and MatMul only).
    public var macs = 0
    /// All floating-point operations, including `biasFlops`.
    public var flops = 0
    /// The part of `flops` spent adding biases (and Gemm's alpha/beta scaling).
    public var biasFlops = 0
    /// Elements of the weight tensor of a conv/Gemm/MatMul, without bias.
    public var kernelElements = 0
    /// The constant inputs that are learnable parameters; nil means every constant input
    /// (a batch norm's running statistics are constants but not parameters).
    public var parameterInputs: [ValueID]? = nil

    public init(category: CostCategory, macs: Int = 0, flops: Int = 0, biasFlops: Int = 0,
                kernelElements: Int = 0, parameterInputs: [ValueID]? = nil) {
        self.category = category
        self.macs = macs
        self.flops = flops
        self.biasFlops = biasFlops
        self.kernelElements = kernelElements
        self.parameterInputs = parameterInputs
    }
}
