import FuzzSupport
import Registry
import RegistryWire

/// The request bodies: a registration and an instance reference (every combination of its
/// status rules) decode or are refused with a message; what decodes meets the core's rules.
/// Also the pieces of a check (Go durations, check URLs, host:port) on the same bytes.
func fuzzBodies(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch RegistrationRequest.decode(bytes) {
    case .success(let request):
        // A decoded registration must be one the core accepts or refuses by its own rules,
        // without trapping.
        var registry = Registry(heartbeatTimeout: .seconds(30))
        _ = registry.register(service: request.service, id: request.id, address: request.address, fields: request.fields,
                              now: Instant(nanoseconds: 1_000_000_000))
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
    // The parts of a check's definition, on any text.
    let text = String(decoding: bytes, as: UTF8.self)
    if let duration = DurationText.parse(text), duration > .zero { _ = DurationText.format(duration) }
    if let url = CheckURL(text) { _ = url.hostHeader }
    _ = CheckDefinition.hostPort(text)
    for (required, allowed) in [(false, false), (false, true), (true, true)] {
        if case .failure(let problem) = InstanceReference.decode(bytes, statusRequired: required, statusAllowed: allowed),
           problem.message.isEmpty {
            fatalError("a refusal without a message")
        }
    }
}

runFuzzer(fuzzBodies)
