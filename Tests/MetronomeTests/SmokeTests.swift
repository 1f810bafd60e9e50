import XCTest
import Metronome
final class SmokeTests: XCTestCase { func testNothing() {} }
