import XCTest
import Metronome
import MetronomeRealtime

/// `data:` tasks: jobs classify labelled images and the summary gives the task's accuracy,
/// checked against a hand count on a model whose scores are its input.
final class TaskDataTests: XCTestCase {
    /// Logits = the 4 input values (Flatten, then Gemm with the identity).
    static func identityClassifier() throws -> Graph {
        var b = GraphBuilder(name: "identity4")
        let x = b.input("x", shape: [-1, 4, 1, 1])
        let eye = try Tensor(shape: [4, 4], scalars: (0..<16).map { $0 % 5 == 0 ? 1 : 0 })
        b.output(b.node("Gemm", [b.flatten(x), b.constant(eye), b.constant(Tensor(shape: [4], repeating: 0))],
                        attributes: ["transB": .int(1)])[0])
        return b.graph
    }

    /// 12 images: image i's largest value sits at i % 4; its label is that class for i < 9, else
    /// the class ranked second (which top-5 with 4 classes still counts).
    static func toyData() -> LabelledData {
        var pixels: [Float] = [], labels: [Int32] = []
        for i in 0..<12 {
            let top = i % 4, second = (i + 1) % 4
            var v: [Float] = [0.1, 0.2, 0.05, 0.15]
            v[top] = 1
            v[second] = 0.5
            pixels += v
            labels.append(Int32(i < 9 ? top : second))
        }
        return LabelledData(shape: [4, 1, 1], pixels: pixels, labels: labels)
    }

    func testJobsCountTheirHitsAndTheSummaryGivesAccuracy() throws {
        let graph = try Self.identityClassifier()
        let task = TaskSet.Task(name: "classify", model: "identity4", batch: 3, period: 4_000_000, data: "toy")
        let set = TaskSet(name: "data", jobs: 10, cores: [Affinity.availableCores()[0]], tasks: [task])
        let prepared = try RealtimeRunner.prepare(set, loader: { _ in graph }, timingRuns: 1, timing: .isolated,
                                                  data: { _ in Self.toyData() })
        XCTAssertEqual(prepared[0].labels.count, 4, "12 images in batches of 3")
        let result = try RealtimeRunner.run(set, prepared: prepared)
        let jobs = result.records[0].filter { !$0.skipped }
        XCTAssertFalse(jobs.isEmpty)
        // Job n classifies batch n % 4: batches 0-2 are all right, batch 3 (images 9-11) all wrong.
        var images = 0, right = 0
        for r in jobs {
            XCTAssertTrue(r.outputOK)
            XCTAssertEqual(r.labelledImages, 3)
            XCTAssertEqual(r.correctTop1, r.job % 4 == 3 ? 0 : 3, "job \(r.job)")
            XCTAssertEqual(r.correctTop5, 3)
            images += 3
            right += r.job % 4 == 3 ? 0 : 3
        }
        let summary = RunSummary(result, analysis: nil)
        let accuracy = try XCTUnwrap(summary.tasks[0].accuracy)
        XCTAssertEqual(accuracy.images, images)
        XCTAssertEqual(accuracy.top1, Double(right) / Double(images), accuracy: 1e-12)
        XCTAssertEqual(accuracy.top5, 1)
        XCTAssertTrue(String(decoding: try summary.json(), as: UTF8.self).contains("\"accuracy\""))
    }

    func testDataErrorsNameTheKey() throws {
        let graph = try Self.identityClassifier()
        func path(_ task: TaskSet.Task, data: LabelledData) -> String? {
            let set = TaskSet(name: "x", jobs: 1, cores: [Affinity.availableCores()[0]], tasks: [task])
            do {
                _ = try RealtimeRunner.prepare(set, loader: { _ in graph }, timingRuns: 1, timing: .isolated, data: { _ in data })
                return nil
            } catch let e as TaskSetError {
                return e.path
            } catch {
                return "unexpected \(error)"
            }
        }
        let wrongShape = LabelledData(shape: [1, 28, 28], pixels: [Float](repeating: 0, count: 784), labels: [0])
        XCTAssertEqual(path(TaskSet.Task(name: "a", model: "m", period: 1_000_000, data: "x"), data: wrongShape), "tasks[0].data")
        XCTAssertEqual(path(TaskSet.Task(name: "a", model: "m", batch: 20, period: 1_000_000, data: "x"), data: Self.toyData()), "tasks[0].data")
        XCTAssertThrowsError(try TaskSet.load(yaml: "name: x\njobs: 1\ntasks:\n  - {name: a, wcet: 1ms, period: 1s, data: fashion-mnist:test}\n")) {
            XCTAssertEqual(($0 as? TaskSetError)?.path, "tasks[0].data")
        }
        XCTAssertEqual(try TaskSet.load(yaml: "name: x\njobs: 1\ntasks:\n  - {name: a, model: m, period: 1s, data: fashion-mnist:test}\n").tasks[0].data,
                       "fashion-mnist:test")
    }
}
