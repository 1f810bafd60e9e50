import Foundation
import Metronome

/// A value decoded by ``RestrictedUnpickler``. Lists and dicts are reference types because
/// pickle fills containers after it has memoized them.
public indirect enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer that does not fit 64 bits, as its little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A reference to one of the few allowed classes or functions.
    case global(module: String, name: String)
    /// A torch storage, from a persistent id the caller resolved.
    case storage(TorchStorageReference)
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2` and relatives.
    case tensor(TorchTensorReference)

    /// At most ``describeLimit`` characters: values go into error messages, and a hostile
    /// pickle can build a value whose full text is astronomically long (64 `DUP, TUPLE2`
    /// pairs make a tuple of 2^64 leaves in 132 bytes).
    public var description: String { describe(limit: PickleValue.describeLimit) }

    public static let describeLimit = 400

    /// The value's text, cut at about `limit` characters, built without recursion and with
    /// work proportional to `limit` (containers show at most their first few items).
    public func describe(limit: Int) -> String {
        enum Token { case value(PickleValue), text(String) }
        let itemsShown = 16
        var out = ""
        var work: [Token] = [.value(self)]
        func container(_ open: String, _ close: String, _ items: [Token], total: Int) {
            work.append(.text(close))
            if total > items.count { work.append(.text(", …")) }
            for (i, t) in items.enumerated().reversed() {
                work.append(t)
                if i > 0 { work.append(.text(", ")) }
            }
            work.append(.text(open))
        }
        while let token = work.popLast() {
            if out.utf8.count >= limit { return out + "…" }
            switch token {
            case .text(let t): out += t
            case .value(let v):
                switch v {
                case .none: out += "None"
                case .bool(let b): out += b ? "True" : "False"
                case .int(let i): out += "\(i)"
                case .bigInt(let b): out += "<\(b.count)-byte integer>"
                case .float(let f): out += "\(f)"
                case .string(let s): out += "'" + String(s.prefix(limit)) + "'"
                case .bytes(let b): out += "<\(b.count) bytes>"
                case .tuple(let t): container("(", ")", t.prefix(itemsShown).map { .value($0) }, total: t.count)
                case .list(let l): container("[", "]", l.items.prefix(itemsShown).map { .value($0) }, total: l.items.count)
                case .dict(let d):
                    let pairs = d.items.prefix(itemsShown).map { kv -> Token in .value(.tuple([kv.0, kv.1])) }
                    container("{", "}", pairs, total: d.items.count)
                case .global(let m, let n): out += "\(m).\(n)"
                case .storage(let s): out += "storage(\(s.dtype), \(s.key.prefix(limit)))"
                case .tensor(let t): out += "tensor(\(t.dtype), \(t.shape.prefix(itemsShown)))"
                }
            }
        }
        return out
    }
}

/// A list (or a set, kept as a list) being built by APPEND(S)/ADDITEMS.
///
/// `depth` and `sealed` let the unpickler cap nesting exactly: once a container is placed
/// inside another value it is sealed and may no longer change, so the depths recorded
/// for its parents stay true and no container can come to contain itself.
public final class PickleList {
    public internal(set) var items: [PickleValue]
    /// Nesting depth of this list (1 when it holds only scalars or nothing).
    var depth = 1
    var sealed = false
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// An insertion-ordered dictionary (Python dicts and OrderedDicts both keep order). String
/// keys are indexed, so building a dict of n entries costs O(n), not O(n²).
public final class PickleDict {
    public private(set) var items: [(PickleValue, PickleValue)] = []
    /// State set on the object by BUILD (an OrderedDict's `_metadata`), kept but unused.
    public internal(set) var state: PickleValue?
    var index: [String: Int] = [:]
    /// Nesting depth and sealing, as for ``PickleList``.
    var depth = 1
    var sealed = false
    init() {}

    func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let k) = key {
            if let i = index[k] { items[i].1 = value; return }
            index[k] = items.count
        }
        items.append((key, value))
    }

    public subscript(_ key: String) -> PickleValue? {
        index[key].map { items[$0].1 }
    }
}

/// What `_rebuild_tensor_v2` was called with: a storage (as the persistent id the
/// unpickler's caller resolved) and the view's geometry.
public struct TorchTensorReference {
    public var storage: TorchStorageReference
    public var offset: Int
    public var shape: [Int]
    public var strides: [Int]
    public var dtype: TorchDType { storage.dtype }
}

public struct TorchStorageReference {
    public var key: String
    public var dtype: TorchDType
    /// Element count of the whole storage, as the checkpoint declares it.
    public var count: Int
    /// For legacy-format storage views: the root storage and the view's element offset.
    public var viewOf: (key: String, offset: Int)?
}

/// Element types of torch storages.
public enum TorchDType: String, Sendable {
    case float32 = "FloatStorage", float64 = "DoubleStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage"
    case uint8 = "ByteStorage", bool = "BoolStorage"

    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool { [.float32, .float64, .float16, .bfloat16].contains(self) }
}

/// A pickle reader that builds plain data and never runs anything.
///
/// Python's own unpickler imports and calls whatever the stream names, so a checkpoint can
/// run arbitrary code. This one knows the opcodes of protocols 0–5 but resolves only the
/// handful of globals a PyTorch state dict needs (OrderedDict, the tensor rebuild functions,
/// the typed storage classes); any other global, and every opcode that would instantiate
/// an object (INST, OBJ, NEWOBJ, extension registry), is refused with an error naming it.
public struct RestrictedUnpickler {
    /// Globals a state dict may reference.
    public static let allowedGlobals: [String] = [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
    ] + ["Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool"].map { "torch.\($0)Storage" }

    let bytes: [UInt8]
    var pos: Int
    let source: String
    /// Turns a persistent id into a value (a storage reference); nil refuses persistent ids.
    var persistentLoad: ((PickleValue) throws -> PickleValue)?
    /// Caps on what a hostile stream can make the reader allocate.
    let maxStack = 1 << 22
    /// Deepest nesting of tuples, lists and dicts accepted. State dicts and training
    /// checkpoints nest a handful of levels; the cap keeps describing and destroying a
    /// value (both recursive in Swift) far from the thread's stack limit.
    public static let maxDepth = 256
    var maxDepth: Int { Self.maxDepth }

    public init(bytes: [UInt8], offset: Int = 0, source: String,
                persistentLoad: ((PickleValue) throws -> PickleValue)? = nil) {
        self.bytes = bytes
        self.pos = offset
        self.source = source
        self.persistentLoad = persistentLoad
    }

    /// The position just after the last STOP read; a legacy checkpoint is several pickles in a row.
    public var offset: Int { pos }

    func fail(_ message: String) -> MetronomeError {
        .invalidArgument("\(source): \(message)")
    }

    mutating func byte() throws -> UInt8 {
        guard pos < bytes.count else { throw fail("truncated pickle data (ends at byte \(bytes.count))") }
        defer { pos += 1 }
        return bytes[pos]
    }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else { throw fail("truncated pickle data (needs \(n) bytes at offset \(pos), \(bytes.count - pos) left)") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    mutating func uint(_ n: Int) throws -> Int {
        let s = try take(n)
        var v: UInt64 = 0
        for (i, b) in s.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        guard v <= UInt64(Int.max) else { throw fail("length \(v) is too large") }
        return Int(v)
    }

    mutating func line() throws -> String {
        guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("truncated pickle data (unterminated line)") }
        defer { pos = end + 1 }
        return String(decoding: bytes[pos..<end], as: UTF8.self)
    }

    func utf8(_ s: ArraySlice<UInt8>) throws -> String {
        guard let v = String(bytes: s, encoding: .utf8) else { throw fail("invalid UTF-8 in a string") }
        return v
    }

    /// Little-endian two's-complement bytes as an Int, or `.bigInt` when wider than 64 bits.
    func integer(_ b: ArraySlice<UInt8>) -> PickleValue {
        let b = Array(b)
        if b.isEmpty { return .int(0) }
        let negative = b[b.count - 1] & 0x80 != 0
        let significant = b.count <= 8 || b[8...].allSatisfy { $0 == (negative ? 0xFF : 0) }
        guard significant else { return .bigInt(b) }
        var v: UInt64 = negative ? ~0 : 0
        for i in 0..<min(8, b.count) {
            v &= ~(UInt64(0xFF) << (8 * UInt64(i)))
            v |= UInt64(b[i]) << (8 * UInt64(i))
        }
        let i = Int(bitPattern: UInt(v))
        if b.count > 8 && (i < 0) != negative { return .bigInt(b) }
        return .int(i)
    }

    /// A stack or memo slot: the value and the nesting depth it had when pushed (lists and
    /// dicts carry their own, which grows as they are filled).
    struct Slot {
        var value: PickleValue
        var depth: Int
        var currentDepth: Int {
            switch value {
            case .list(let l): return l.depth
            case .dict(let d): return d.depth
            default: return depth
            }
        }
    }

    /// Reads one pickle up to its STOP opcode and returns the value it builds.
    public mutating func load() throws -> PickleValue {
        var stack: [Slot] = []
        var marks: [Int] = []
        var memo: [Int: Slot] = [:]
        let maxDepth = self.maxDepth
        let fail = self.fail

        func pop() throws -> Slot {
            guard let v = stack.popLast() else { throw fail("stack underflow (corrupt pickle)") }
            if let m = marks.last, stack.count < m { throw fail("stack underflow past a mark (corrupt pickle)") }
            return v
        }
        func popMark() throws -> [Slot] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("missing MARK (corrupt pickle)") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        func top() throws -> Slot {
            guard let v = stack.last else { throw fail("stack underflow (corrupt pickle)") }
            return v
        }
        func push(_ v: PickleValue, depth: Int = 0) throws {
            guard stack.count < maxStack else { throw fail("pickle stack exceeds \(maxStack) entries") }
            stack.append(Slot(value: v, depth: depth))
        }
        func push(_ slot: Slot) throws {
            guard stack.count < maxStack else { throw fail("pickle stack exceeds \(maxStack) entries") }
            stack.append(slot)
        }
        /// Seals the containers among `children` (they now sit inside another value and may
        /// not change) and returns the depth of a value holding them.
        func nest(_ children: [Slot], into parent: AnyObject? = nil) throws -> Int {
            var deepest = 0
            for c in children {
                switch c.value {
                case .list(let l):
                    if l === parent { throw fail("a list that contains itself (recursive structures are not supported)") }
                    l.sealed = true
                case .dict(let d):
                    if d === parent { throw fail("a dict that contains itself (recursive structures are not supported)") }
                    d.sealed = true
                default: break
                }
                deepest = max(deepest, c.currentDepth)
            }
            guard deepest < maxDepth else {
                throw fail("values nested deeper than \(maxDepth) levels (a state dict needs a handful)")
            }
            return deepest + 1
        }
        func tuple(_ items: [Slot]) throws {
            let depth = try nest(items)
            try push(.tuple(items.map(\.value)), depth: depth)
        }
        func list(_ what: String) throws -> PickleList {
            guard case .list(let l) = try top().value else { throw fail("\(what) to a non-list") }
            guard !l.sealed else { throw fail("\(what) to a list that is already inside another value (recursive structures are not supported)") }
            return l
        }
        func append(_ items: [Slot], _ what: String) throws {
            let l = try list(what)
            l.depth = max(l.depth, try nest(items, into: l))
            l.items.append(contentsOf: items.map(\.value))
        }
        func setItems(_ pairs: [Slot]) throws {
            guard pairs.count % 2 == 0 else { throw fail("odd number of items for SETITEMS") }
            guard case .dict(let d) = try top().value else { throw fail("SETITEM(S) on a non-dict") }
            guard !d.sealed else { throw fail("SETITEM(S) on a dict that is already inside another value (recursive structures are not supported)") }
            d.depth = max(d.depth, try nest(pairs, into: d))
            for i in stride(from: 0, to: pairs.count, by: 2) { d.set(pairs[i].value, pairs[i + 1].value) }
        }

        while true {
            let opPos = pos
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()  // PROTO
            case 0x95: _ = try take(8)  // FRAME: framing is transparent to a reader of the whole stream
            case 0x2E:  // STOP
                guard marks.isEmpty, stack.count == 1 else { throw fail("malformed pickle (stack not empty at STOP)") }
                return stack[0].value
            case 0x28: marks.append(stack.count)  // MARK
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: try push(try top())  // DUP (the same slot: shared, not copied)
            case 0x4E: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4B: try push(.int(Int(try byte())))  // BININT1
            case 0x4D: try push(.int(try uint(2)))  // BININT2
            case 0x4A:  // BININT (signed 32)
                let v = try uint(4)
                try push(.int(Int(Int32(truncatingIfNeeded: v))))
            case 0x8A: let n = Int(try byte()); try push(integer(try take(n)))  // LONG1
            case 0x8B:  // LONG4
                let n = try uint(4)
                try push(integer(try take(n)))
            case 0x49:  // INT (text): also True/False as 01/00
                let l = try line()
                if l == "01" { try push(.bool(true)) } else if l == "00" { try push(.bool(false)) }
                else if let v = Int(l) { try push(.int(v)) } else { throw fail("bad INT '\(l)'") }
            case 0x4C:  // LONG (text)
                var l = try line()
                if l.hasSuffix("L") { l.removeLast() }
                guard let v = Int(l) else { throw fail("integer '\(l)' is too large") }
                try push(.int(v))
            case 0x46:  // FLOAT (text)
                let l = try line()
                guard let v = Double(l) else { throw fail("bad FLOAT '\(l)'") }
                try push(.float(v))
            case 0x47:  // BINFLOAT (big-endian double)
                let s = try take(8)
                var v: UInt64 = 0
                for b in s { v = v << 8 | UInt64(b) }
                try push(.float(Double(bitPattern: v)))
            case 0x58: let n = try uint(4); try push(.string(try utf8(try take(n))))  // BINUNICODE
            case 0x8C: let n = Int(try byte()); try push(.string(try utf8(try take(n))))  // SHORT_BINUNICODE
            case 0x8D: let n = try uint(8); try push(.string(try utf8(try take(n))))  // BINUNICODE8
            case 0x56: try push(.string(try line()))  // UNICODE (raw-unicode-escape; ASCII in practice)
            case 0x54: let n = try uint(4); try push(.bytes(Array(try take(n))))  // BINSTRING
            case 0x55: let n = Int(try byte()); try push(.bytes(Array(try take(n))))  // SHORT_BINSTRING
            case 0x53:  // STRING (quoted repr)
                var l = try line()
                if l.count >= 2, let q = l.first, q == "'" || q == "\"", l.last == q { l = String(l.dropFirst().dropLast()) }
                try push(.string(l))
            case 0x42: let n = try uint(4); try push(.bytes(Array(try take(n))))  // BINBYTES
            case 0x43: let n = Int(try byte()); try push(.bytes(Array(try take(n))))  // SHORT_BINBYTES
            case 0x8E, 0x96: let n = try uint(8); try push(.bytes(Array(try take(n))))  // BINBYTES8, BYTEARRAY8
            case 0x29: try push(.tuple([]))  // EMPTY_TUPLE
            case 0x74: try tuple(try popMark())  // TUPLE
            case 0x85: try tuple([try pop()])  // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try tuple([a, b])
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try tuple([a, b, c])
            case 0x5D: try push(.list(PickleList()))  // EMPTY_LIST
            case 0x6C:  // LIST
                let items = try popMark()
                try push(.list(PickleList()))
                try append(items, "LIST")
            case 0x61: try append([try pop()], "APPEND")
            case 0x65: try append(try popMark(), "APPENDS")
            case 0x7D: try push(.dict(PickleDict()))  // EMPTY_DICT
            case 0x64:  // DICT
                let items = try popMark()
                try push(.dict(PickleDict()))
                try setItems(items)
            case 0x73: let v = try pop(), k = try pop(); try setItems([k, v])  // SETITEM
            case 0x75: try setItems(try popMark())  // SETITEMS
            case 0x8F: try push(.list(PickleList()))  // EMPTY_SET, kept as a list
            case 0x90: try append(try popMark(), "ADDITEMS")
            case 0x91: try tuple(try popMark())  // FROZENSET
            case 0x67:  // GET
                guard let i = Int(try line()), let v = memo[i] else { throw fail("GET of an unknown memo entry") }
                try push(v)
            case 0x68:  // BINGET
                let i = Int(try byte())
                guard let v = memo[i] else { throw fail("BINGET of unknown memo entry \(i)") }
                try push(v)
            case 0x6A:  // LONG_BINGET
                let i = try uint(4)
                guard let v = memo[i] else { throw fail("LONG_BINGET of unknown memo entry \(i)") }
                try push(v)
            case 0x70:  // PUT
                guard let i = Int(try line()) else { throw fail("bad PUT index") }
                memo[i] = try top()
            case 0x71: memo[Int(try byte())] = try top()  // BINPUT
            case 0x72: memo[try uint(4)] = try top()  // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                try push(try global(module, name))
            case 0x93:  // STACK_GLOBAL
                let n = try pop().value, m = try pop().value
                guard case .string(let module) = m, case .string(let name) = n else { throw fail("STACK_GLOBAL needs two strings") }
                try push(try global(module, name))
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                guard case .tuple(let a) = args.value else { throw fail("REDUCE arguments are not a tuple") }
                // The result is built from the arguments, so it is no deeper than they are.
                let result = try call(callable.value, a)
                if case .dict(let d) = result { d.depth = max(d.depth, args.currentDepth) }
                try push(result, depth: args.currentDepth)
            case 0x62:  // BUILD: sets state on the object below; only OrderedDict metadata is expected
                let state = try pop()
                guard case .dict(let d) = try top().value else {
                    throw fail("BUILD (setting object state) on \(try top().value) is not allowed")
                }
                guard !d.sealed else { throw fail("BUILD on a dict that is already inside another value") }
                d.depth = max(d.depth, try nest([state], into: d))
                d.state = state.value
            case 0x51:  // BINPERSID
                let pid = try pop().value
                guard let persistentLoad else { throw fail("persistent id \(pid) in a pickle that may not have one") }
                try push(try persistentLoad(pid))
            case 0x50:  // PERSID
                let pid = PickleValue.string(try line())
                guard let persistentLoad else { throw fail("persistent id \(pid) in a pickle that may not have one") }
                try push(try persistentLoad(pid))
            case 0x81, 0x92:  // NEWOBJ, NEWOBJ_EX
                throw fail("refusing to instantiate an object (NEWOBJ at byte \(opPos)); only tensors, storages, numbers, strings and containers are allowed")
            case 0x69, 0x6F:  // INST, OBJ
                throw fail("refusing to instantiate an object (INST/OBJ at byte \(opPos)); only tensors, storages, numbers, strings and containers are allowed")
            case 0x82, 0x83, 0x84:
                throw fail("refusing the copyreg extension registry (EXT opcode at byte \(opPos))")
            case 0x97, 0x98:
                throw fail("out-of-band pickle buffers are not supported")
            default:
                throw fail(String(format: "unknown pickle opcode 0x%02X at byte %d (corrupt or not a pickle)", op, opPos))
            }
        }
    }

    func global(_ module: String, _ name: String) throws -> PickleValue {
        let full = "\(module).\(name)"
        guard Self.allowedGlobals.contains(full) else {
            throw fail("refusing to load global '\(full)': a checkpoint may reference only "
                       + Self.allowedGlobals.joined(separator: ", ") + " (nothing in it is ever executed)")
        }
        return .global(module: module, name: name)
    }

    func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard case .tuple(let items) = v else { throw fail("\(what) is not a tuple: \(v)") }
        return try items.map { item -> Int in
            guard case .int(let i) = item else { throw fail("\(what) holds a non-integer: \(item)") }
            return i
        }
    }

    /// The effect of calling one of the allowed globals, computed without running anything.
    func call(_ callable: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        guard case .global(let module, let name) = callable else { throw fail("REDUCE on a non-callable \(callable)") }
        switch "\(module).\(name)" {
        case "collections.OrderedDict":
            let d = PickleDict()
            if let first = args.first, case .list(let l) = first {
                for item in l.items {
                    guard case .tuple(let kv) = item, kv.count == 2 else { throw fail("OrderedDict items are not pairs") }
                    d.set(kv[0], kv[1])
                }
            } else if !args.isEmpty {
                throw fail("OrderedDict called with unexpected arguments \(PickleValue.tuple(args))")
            }
            return .dict(d)
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard args.count >= 4 else { throw fail("\(name) needs at least 4 arguments, got \(args.count)") }
            guard case .storage(let storage) = args[0] else {
                throw fail("\(name): first argument is not a storage")
            }
            guard case .int(let offset) = args[1], offset >= 0 else { throw fail("\(name): bad storage offset \(args[1])") }
            let shape = try ints(args[2], "tensor size"), strides = try ints(args[3], "tensor stride")
            guard shape.count == strides.count, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
                throw fail("\(name): size \(shape) and stride \(strides) do not describe a tensor")
            }
            return .tensor(TorchTensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter":
            guard let data = args.first, case .tensor = data else { throw fail("_rebuild_parameter without a tensor") }
            return data
        default:
            throw fail("calling '\(module).\(name)' is not allowed")
        }
    }
}
