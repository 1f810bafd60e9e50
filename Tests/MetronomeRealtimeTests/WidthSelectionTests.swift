import Foundation
import Metronome
import MetronomeRealtime
import XCTest

final class WidthSelectionTests: XCTestCase {
    let ms: Int64 = 1_000_000

    /// Widths with WCETs 2, 4, 8 ms (medians 1.5, 3, 6): the widest that fits the time left.
    func testPicksTheWidestWidthThatFits() {
        var s = WidthSelector(wcets: [2 * ms, 4 * ms, 8 * ms], medians: [3 * ms / 2, 3 * ms, 6 * ms])
        XCTAssertEqual(s.choose(timeLeft: 10 * ms), 2)
        XCTAssertEqual(s.choose(timeLeft: 5 * ms), 1, "8 ms does not fit 5, 4 does")
        XCTAssertEqual(s.choose(timeLeft: 1 * ms), 0, "nothing fits: the narrowest")
        // Interference: jobs ran at twice their median; 4 ms × ~1.6 no longer fits 6 ms.
        s = WidthSelector(wcets: [2 * ms, 4 * ms, 8 * ms], medians: [3 * ms / 2, 3 * ms, 6 * ms])
        for _ in 0..<5 { s.observe(width: 2, execution: 12 * ms) }
        XCTAssertGreaterThan(s.inflation, 1.6)
        XCTAssertEqual(s.choose(timeLeft: 6 * ms), 0)
    }

    /// Down at once, up one width after three jobs in a row with room to spare.
    func testHysteresis() {
        var s = WidthSelector(wcets: [2 * ms, 4 * ms, 8 * ms], medians: [2 * ms, 4 * ms, 8 * ms])
        XCTAssertEqual(s.choose(timeLeft: 3 * ms), 0)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 0, "one roomy job is not enough")
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 0)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1, "the third in a row raises one width")
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 2)
        XCTAssertEqual(s.choose(timeLeft: 4 * ms + 1), 1, "down at once")
        // A roomy job breaks the streak when the next one is tight.
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 8 * ms), 1, "8 ms fits but not with 10% to spare")
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        s.degrade()
        XCTAssertEqual(s.current, 0)
    }

    func testWidthKeysAndErrors() throws {
        let base = "name: s\nduration: 1s\ncores: [0]\ntasks:\n  - name: a\n    period: 10ms\n"
        let set = try TaskSet.load(yaml: base + "    wcet: [1ms, 2ms, 4ms]\n    widths: [0.35, 0.5, 1.0]\n    budget: 3ms\n    on_overrun: degrade\n")
        XCTAssertEqual(set.tasks[0].widths, [0.35, 0.5, 1.0])
        XCTAssertEqual(set.tasks[0].widthWCETs, [ms, 2 * ms, 4 * ms])
        XCTAssertEqual(set.tasks[0].budget, 3 * ms)
        XCTAssertEqual(set.tasks[0].onOverrun, .degrade)
        XCTAssertEqual(TaskDemand.declaredPerWidth(set.tasks[0])?.map(\.wcet), [ms, 2 * ms, 4 * ms])
        for (extra, path) in [
            ("    wcet: [1ms, 2ms]\n    widths: [0.5, 1.0, 0.75]\n", "tasks[0].widths"),
            ("    wcet: [1ms, 2ms]\n    widths: [0.5, 1.5]\n", "tasks[0].widths"),
            ("    wcet: [1ms, 2ms, 3ms]\n    widths: [0.5, 1.0]\n", "tasks[0].wcet"),
            ("    wcet: 2ms\n    widths: [0.5, 1.0]\n", "tasks[0].wcet"),
            ("    wcet: [1ms, 2ms]\n", "tasks[0].wcet"),
            ("    wcet: 2ms\n    on_overrun: degrade\n", "tasks[0].on_overrun"),
            ("    wcet: 2ms\n    on_overrun: retry\n", "tasks[0].on_overrun"),
            ("    wcet: 2ms\n    budget: 0ms\n", "tasks[0].budget"),
            ("    model: m\n    width: 0.5\n    widths: [0.5, 1.0]\n", "tasks[0].width"),
        ] {
            XCTAssertThrowsError(try TaskSet.load(yaml: base + extra), path) { error in
                XCTAssertEqual((error as? TaskSetError)?.path, path, "\(error)")
            }
        }
    }
}
