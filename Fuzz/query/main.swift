import FuzzSupport
import HTTPParsing

/// A read's query string (an instance listing's and `/services`'), the duration and decimal parsers and instance
/// addresses as endpoints: refused with a
/// message or parsed into values inside their bounds.
func fuzzQuery(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch ReadQuery.parse(bytes) {
    case .success(let query):
        if let limit = query.limit, limit < 1 { fatalError("limit \(limit)") }
        if let wait = query.wait, wait < .zero || wait > .seconds(86_400) { fatalError("wait \(wait)") }
        _ = query.filterKey
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
    switch ServicesQuery.parse(bytes) {
    case .success(let query):
        if let limit = query.limit, limit < 1 || limit > ServicesQuery.maximumLimit { fatalError("limit \(limit)") }
        if let wait = query.wait, wait < .zero || wait > .seconds(86_400) { fatalError("wait \(wait)") }
        _ = query.listingKey
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
    let text = String(decoding: bytes, as: UTF8.self)
    // An instance's address as the Prometheus targets (and Consul's view) read it.
    if let endpoint = InstanceEndpoint.parse(text), endpoint.port < 1 || endpoint.port > 65_535 || endpoint.host.isEmpty {
        fatalError("endpoint \(endpoint) from \(text)")
    }
    if let wait = ReadQuery.parseWait(text), wait < .zero || wait > .seconds(86_400) { fatalError("wait \(wait) from \(text)") }
    if let number = DecimalText.number(text), !number.isFinite || number < 0 { fatalError("number \(number) from \(text)") }
    if let count = DecimalText.unsigned(text), String(count) != text.drop(while: { $0 == "0" }).description, count != 0 {
        fatalError("unsigned \(count) from \(text)")
    }
}

runFuzzer(fuzzQuery)
