import FuzzSupport
import HTTPParsing
import Registry
import RegistryWire

/// Consul's decoders: a service registration (`PUT /v1/agent/service/register`), a TTL
/// check's update body, and a Consul query string, on the same bytes. Each decodes or is
/// refused with a message; a decoded registration is one the core accepts or refuses by its
/// own rules, without trapping, and its native address is made from any address and port.
func fuzzConsul(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch ConsulRegistration.decode(bytes) {
    case .success(let registration):
        let request = registration.request(clientAddress: "127.0.0.1")
        var registry = Registry(heartbeatTimeout: .seconds(30))
        _ = registry.register(service: request.service, id: request.id, address: request.address, fields: request.fields,
                              now: Instant(nanoseconds: 1_000_000_000))
        _ = registration.nativeAddress(clientAddress: "::1")
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
    if case .failure(let problem) = ConsulCheckUpdate.decode(bytes), problem.message.isEmpty {
        fatalError("a refusal without a message")
    }
    switch ConsulQuery.parse(bytes) {
    case .success(let query):
        _ = query.effectiveWait(cap: .seconds(600))
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
}

runFuzzer(fuzzConsul)
