extension Node {
    /// The opset-17 ONNX nodes for this node, as its operator writes them; the node itself
    /// for operators the engine does not run.
    public func exportedToONNX(_ context: inout ONNXExportContext) throws -> [Node] {
        guard let op = OperatorRegistry.named(opType) else { return [self] }
        return try op.exportONNX(self, &context)
    }
}
