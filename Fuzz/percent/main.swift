import FuzzSupport
import HTTPParsing

/// Percent-decoding of a path segment: a result is valid UTF-8 and decoding never grows the
/// input; text without '%' decodes to itself.
func fuzzPercent(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch PercentDecoding.decode(bytes) {
    case .success(let text):
        guard text.utf8.count <= size else { fatalError("decoding grew \(size) bytes to \(text.utf8.count)") }
        if !bytes.contains(UInt8(ascii: "%")), Array(text.utf8) != Array(bytes) { fatalError("plain text changed") }
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
}

runFuzzer(fuzzPercent)
