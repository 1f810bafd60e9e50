import Foundation

/// A training run's state after an epoch: the parameters and running statistics, the best
/// model so far, the optimizer's state and the history, so a run can resume where it
/// stopped. One file: a magic line, a JSON header line, then the float32 data it lists.
public struct Checkpoint: Equatable {
    public struct Header: Codable, Equatable {
        public var format = 1
        public var model: String
        /// Epochs completed.
        public var epoch: Int
        public var optimizerSteps: Int
        public var bestValidation: Double
        public var bestEpoch: Int
        public var history: [EpochReport]
        /// What follows, in order: name and element count.
        public var tensors: [Entry]
        public var settings: String
        /// Slimmable runs: the history per epoch and width, and each width's optimizer steps.
        public var widthHistory: [[EpochReport]]? = nil
        public var privateSteps: [Int]? = nil
    }

    public struct Entry: Codable, Equatable {
        public var name: String
        public var count: Int
    }

    public var header: Header
    public var state: [String: [Float]]
    public var best: [String: [Float]]
    public var first: [[Float]]
    public var second: [[Float]]

    static let magic = "METRONOME-CHECKPOINT\n"

    public func write(to url: URL) throws {
        var h = header
        h.tensors = []
        var payload = Data()
        func add(_ name: String, _ values: [Float]) {
            h.tensors.append(Entry(name: name, count: values.count))
            values.withUnsafeBufferPointer { payload.append(Data(buffer: $0)) }
        }
        for (name, v) in state.sorted(by: { $0.key < $1.key }) { add("state/" + name, v) }
        for (name, v) in best.sorted(by: { $0.key < $1.key }) { add("best/" + name, v) }
        for (i, v) in first.enumerated() { add("optimizer/first/\(i)", v) }
        for (i, v) in second.enumerated() { add("optimizer/second/\(i)", v) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = Data(Self.magic.utf8)
        data.append(try encoder.encode(h))
        data.append(Data("\n".utf8))
        data.append(payload)
        // Written whole and renamed, so an interrupted write never leaves a half checkpoint.
        let tmp = url.appendingPathExtension("tmp")
        try data.write(to: tmp)
        _ = try? FileManager.default.removeItem(at: url)
        try FileManager.default.moveItem(at: tmp, to: url)
    }

    public static func read(_ url: URL) throws -> Checkpoint {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DatasetError(source: url.path, message: "cannot read the checkpoint (\(error.localizedDescription))")
        }
        let bytes = [UInt8](data)
        let magic = Array(Self.magic.utf8)
        guard bytes.count > magic.count, Array(bytes[..<magic.count]) == magic,
              let end = bytes[magic.count...].firstIndex(of: UInt8(ascii: "\n")) else {
            throw DatasetError(source: url.path, message: "not a Metronome checkpoint")
        }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(bytes[magic.count..<end])) } catch {
            throw DatasetError(source: url.path, message: "corrupt checkpoint header (\(error))")
        }
        var offset = end + 1
        var state: [String: [Float]] = [:], best: [String: [Float]] = [:]
        var first: [Int: [Float]] = [:], second: [Int: [Float]] = [:]
        for e in header.tensors {
            guard e.count >= 0, offset + 4 * e.count <= bytes.count else {
                throw DatasetError(source: url.path, message: "truncated: '\(e.name)' needs \(e.count) values")
            }
            var v = [Float](repeating: 0, count: e.count)
            _ = v.withUnsafeMutableBytes { bytes[offset..<(offset + 4 * e.count)].copyBytes(to: $0) }
            offset += 4 * e.count
            if e.name.hasPrefix("state/") { state[String(e.name.dropFirst(6))] = v }
            else if e.name.hasPrefix("best/") { best[String(e.name.dropFirst(5))] = v }
            else if e.name.hasPrefix("optimizer/first/"), let i = Int(e.name.dropFirst(16)) { first[i] = v }
            else if e.name.hasPrefix("optimizer/second/"), let i = Int(e.name.dropFirst(17)) { second[i] = v }
            else { throw DatasetError(source: url.path, message: "unknown tensor '\(e.name)'") }
        }
        guard offset == bytes.count else { throw DatasetError(source: url.path, message: "\(bytes.count - offset) bytes after the last tensor") }
        return Checkpoint(header: header, state: state, best: best,
                          first: first.keys.sorted().map { first[$0]! }, second: second.keys.sorted().map { second[$0]! })
    }
}
