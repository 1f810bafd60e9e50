/// Training steps described as kernels, so that latency predictors learn and predict them as
/// they do compiled inference kernels.
///
/// A trainer runs the unoptimized program one step at a time, forward and then backward, on
/// plain layouts; each step's forward and backward together are one "kernel" here, with the
/// step's geometry, its weights' shape and a primitive kind taken from its cost category.
/// Two pseudo-kernels follow the steps: zeroing the gradients with the loss
/// (`opType` `Gradients`, weights = every gradient buffer's elements) and the optimizer's
/// update (`opType` `Optimizer`, weights = every parameter's elements), whose costs grow with
/// the model rather than with any one step.
extension KernelInfo {
    /// The backend name training kernels carry; `implementation` is `train:` and the kernel
    /// set, or, for a fast convolution, `train:` and oneDNN's implementation.
    public static let trainingBackend = "train"

    /// One description per step of `program`, then the gradient and optimizer pseudo-kernels.
    /// `gradientElements` and `parameterElements` are the trainer's totals; `convolutions`
    /// (fast kernels) gives the convolutions' oneDNN implementations and layouts.
    public static func describe(trainingSteps program: Program, kernelSet: String, gradientElements: Int,
                                parameterElements: Int, convolutions: FastConvolutions? = nil) throws -> [KernelInfo] {
        var result: [KernelInfo] = []
        for (index, step) in program.steps.enumerated() {
            let category = try step.cost(in: program).category
            let primitive: String
            switch category {
            case .convolution:
                primitive = step.window(in: program) != nil ? "convolution" : "inner_product"
            case .pooling: primitive = "pooling"
            case .batchNorm: primitive = "batch_normalization"
            case .elementwise: primitive = "binary"
            case .softmax: primitive = "softmax"
            case .dataMovement: primitive = step.opType == "Concat" || step.opType == "Split" ? "concat" : "copy"
            case .activation, .bias: primitive = "eltwise"
            }
            var info = KernelInfo(index: index, name: step.name, nodes: [step.name], opType: step.opType,
                                  backend: trainingBackend, primitive: primitive, implementation: "train:\(kernelSet)",
                                  srcShape: step.inputs.first.map(program.shape) ?? [],
                                  weightsShape: step.inputs.count > 1 && program.isConstant(step.inputs[1]) ? program.shape(step.inputs[1]) : [],
                                  dstShape: step.outputs.first.map(program.shape) ?? [],
                                  srcLayout: "", dstLayout: "", kernelShape: [], strides: [], dilations: [], groups: 1, postOps: [])
            info.srcLayout = DNNL.plainLetters(info.srcShape.count)
            info.dstLayout = DNNL.plainLetters(info.dstShape.count)
            if let c = convolutions?.steps[index] {
                info.implementation = "train:\(c.implementation)"
                info.srcLayout = c.sourceLayout
                info.dstLayout = c.outputLayout
            }
            if let w = step.window(in: program) {
                info.kernelShape = w.kernel; info.strides = w.strides; info.dilations = w.dilations; info.groups = w.groups
            }
            result.append(info)
        }
        for (opType, elements) in [("Gradients", gradientElements), ("Optimizer", parameterElements)] {
            result.append(KernelInfo(index: result.count, name: opType.lowercased(), nodes: [], opType: opType,
                                     backend: trainingBackend, primitive: opType.lowercased(), implementation: "train:\(kernelSet)",
                                     srcShape: [elements], weightsShape: [elements], dstShape: [elements], srcLayout: "a",
                                     dstLayout: "a", kernelShape: [], strides: [], dilations: [], groups: 1, postOps: []))
        }
        return result
    }
}
