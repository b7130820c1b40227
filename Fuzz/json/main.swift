import FuzzSupport
import JSON

/// The strict JSON parser: any bytes either parse or fail with an offset inside the input;
/// parsing is deterministic; and the writer's output for a parsed string parses back to it.
func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    do {
        let value = try JSONParser.parse(bytes)
        guard (try? JSONParser.parse(bytes)) == value else { fatalError("the same bytes parsed two ways") }
        if case .string(let text) = value {
            var writer = JSONWriter()
            writer.string(text)
            guard (try? JSONParser.parse(writer.bytes)) == .string(text) else { fatalError("a written string did not parse back") }
        }
    } catch {
        guard error.offset >= 0, error.offset <= size else { fatalError("error offset \(error.offset) outside \(size) bytes") }
    }
}

runFuzzer(fuzzJSON)
