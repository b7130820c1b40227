import DNS
import FuzzSupport
import Registry

/// DNS messages: any bytes are a query the zone answers, a header answered with its code, or
/// dropped; every answer the writer makes, at each size limit, reads back as a well-formed
/// message within the limit (TC set when records were cut). Any bytes also go through the
/// full message reader, which must neither trap nor loop.
let zone = DNSZone(domains: [DNSName("registry.")!, DNSName("consul.")!], ttl: 0, datacenter: "dc1")
let instances: [String: [InstanceSnapshot]] = [
    "web": ["http://10.0.0.1:8080", "https://[fd00::3]", "http://web4.example:9000", "10.0.0.4", "not a url"].enumerated().map { position, address in
        InstanceSnapshot(id: "w\(position)", attributes: InstanceAttributes(address: address, tags: position % 2 == 0 ? ["v1"] : [], zone: "eu-1"),
                         registeredAt: Instant(nanoseconds: 0), lastHeartbeat: Instant(nanoseconds: 0), deadline: Instant(nanoseconds: 0),
                         ttl: .seconds(30), isProtected: false)
    },
    "big": (0..<300).map { number in
        InstanceSnapshot(id: "b\(number)", attributes: InstanceAttributes(address: "http://10.1.\(number / 256).\(number % 256):80"),
                         registeredAt: Instant(nanoseconds: 0), lastHeartbeat: Instant(nanoseconds: 0), deadline: Instant(nanoseconds: 0),
                         ttl: .seconds(30), isProtected: false)
    },
]

func fuzzDNS(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    _ = DNSReader.parseMessage(bytes)
    let response: DNSResponse
    switch DNSReader.parseQuery(bytes) {
    case .success(let query):
        response = zone.answer(query, rotation: size) { instances[$0] }
    case .failure(.drop):
        return
    case .failure(.answer(let id, let opcode, _, let code)):
        response = DNSResponse(id: id)
        _ = (opcode, code)
    }
    for limit in [512, 1232, 65_535] {
        let (encoded, truncated) = DNSWriter.encode(response, limit: limit)
        guard encoded.count <= max(limit, 512) else { fatalError("an answer of \(encoded.count) bytes for a limit of \(limit)") }
        guard let message = encoded.withUnsafeBufferPointer({ DNSReader.parseMessage($0) }) else {
            fatalError("the writer made a message its reader refuses")
        }
        guard message.isTruncated == truncated, message.id == response.id else { fatalError("the header does not say what was written") }
        if !truncated, message.answers.count != response.answers.count { fatalError("answers lost without TC") }
    }
}

runFuzzer(fuzzDNS)
