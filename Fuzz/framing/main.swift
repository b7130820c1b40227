import FuzzSupport
import HTTPParsing

/// The raw-request filter: bytes arriving in pieces (the first byte of the input chooses
/// the piece size) are passed, discarded, held or refused; every step accounts for bytes
/// that are there, no step loops, and once refused nothing more is passed.
func fuzzFraming(_ data: UnsafePointer<UInt8>, _ size: Int) {
    guard size > 0 else { return }
    let piece = Int(data[0] % 64) + 1
    let input = UnsafeBufferPointer(start: data + 1, count: size - 1)
    var framing = RequestFraming(maxHeadBytes: 512, allowedMethods: { _ in "GET, POST" })
    var waiting: [UInt8] = []
    var offset = 0
    var rejected = false
    while offset < input.count || !waiting.isEmpty {
        if offset < input.count {
            let end = min(input.count, offset + piece)
            waiting += input[offset..<end]
            offset = end
        }
        var steps = 0
        stepping: while true {
            steps += 1
            if steps > 100_000 { fatalError("the framing does not make progress") }
            let visibleCount = framing.needsBytes ? min(waiting.count, 512 + 3) : 0
            let step = waiting.withUnsafeBufferPointer { all in
                framing.next(waiting: waiting.count, visible: UnsafeBufferPointer(rebasing: all[0..<visibleCount]))
            }
            switch step {
            case .wait:
                break stepping
            case .pass(let count):
                guard count > 0, count <= waiting.count, !rejected else { fatalError("pass \(count) of \(waiting.count)") }
                waiting.removeFirst(count)
            case .discard(let count):
                guard count > 0, count <= waiting.count else { fatalError("discard \(count) of \(waiting.count)") }
                waiting.removeFirst(count)
            case .reject(let count, let rejection):
                guard count >= 0, count <= waiting.count, rejection.status >= 400, rejection.status < 600, !rejection.message.isEmpty else {
                    fatalError("reject \(count) of \(waiting.count): \(rejection)")
                }
                waiting.removeFirst(count)
                rejected = true
            }
        }
        if offset >= input.count { break }
    }
}

runFuzzer(fuzzFraming)
