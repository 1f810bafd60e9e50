import Foundation
import MetronomeIO
import XCTest

/// `SHA256Digest` (the `metronome dataset` manifest's hash) against FIPS 180-2's published
/// examples and hashlib digests written down here, at the padding boundaries (55, 56, 64 and
/// 119 bytes, where the length field does or does not fit the last block) and fed in uneven
/// pieces. The CLI tests compare whole variant files with hashlib as well.
final class SHA256Tests: XCTestCase {
    static let vectors: [(Data, String)] = [
        (Data(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (Data("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (Data(repeating: 0x61, count: 55), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
        (Data(repeating: 0x61, count: 64), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
        (Data(repeating: 0x61, count: 119), "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"),
        (Data(repeating: 0x61, count: 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ]

    func testPublishedDigestsWholeAndInPieces() {
        for (message, expected) in Self.vectors {
            var whole = SHA256Digest()
            whole.update(message)
            XCTAssertEqual(whole.finalize(), expected, "\(message.count) bytes")
            var pieces = SHA256Digest()
            var i = 0, step = 1
            while i < message.count {
                let j = min(message.count, i + step)
                pieces.update(message.subdata(in: i..<j))
                i = j
                step = step * 3 + 1
            }
            XCTAssertEqual(pieces.finalize(), expected, "\(message.count) bytes in pieces")
        }
    }

    /// `file` reads in 1 MiB chunks; a 3 MiB + 5 byte file crosses chunk and block boundaries.
    func testFileMatchesInMemoryDigest() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sha256-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let data = Data((0..<(3 << 20) + 5).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try data.write(to: url)
        var digest = SHA256Digest()
        digest.update(data)
        XCTAssertEqual(try SHA256Digest.file(url.path), digest.finalize())
        XCTAssertThrowsError(try SHA256Digest.file(url.path + "-missing")) { error in
            XCTAssertTrue("\(error)".contains("-missing"), "\(error)")
        }
    }
}
