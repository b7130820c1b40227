import FuzzSupport
import Registry
import RegistryWire

/// Eureka's registration bodies, JSON and XML (the first non-space byte decides), and the
/// XML reader on its own: each decodes or is refused with a message; a decoded instance
/// becomes a native registration the core accepts or refuses by its own rules.
func fuzzEureka(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch EurekaInstance.decodeRegistration(bytes) {
    case .success(let instance):
        var registry = Registry(heartbeatTimeout: .seconds(30))
        let fields = InstanceFields(tags: [], metadata: instance.nativeMetadata, status: EurekaInstance.nativeStatus(instance.status),
                                    ttl: .seconds(Double(instance.durationInSecs)))
        _ = registry.register(service: instance.serviceName, id: instance.instanceId, address: instance.nativeAddress, fields: fields,
                              now: Instant(nanoseconds: 1_000_000_000))
        _ = instance.droppedMetadata
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
    if case .failure(let failure) = XMLElement.parse(bytes), failure.message.isEmpty || failure.offset > size {
        fatalError("a refusal without a message, or past the input")
    }
}

runFuzzer(fuzzEureka)
