/// Type-erased, comparable attributes for ``Op/custom(_:)``.
public struct CustomAttributes: Equatable, Sendable, CustomStringConvertible {
    public let value: any Hashable & Sendable

    public init(_ value: some Hashable & Sendable) { self.value = value }

    /// The attributes as the operator's own type, or nil when they are of another type.
    public func `as`<T>(_ type: T.Type) -> T? { value as? T }

    public static func == (a: CustomAttributes, b: CustomAttributes) -> Bool {
        AnyHashable(a.value) == AnyHashable(b.value)
    }

    public var description: String { "\(value)" }
}
