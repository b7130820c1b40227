import DNS
import Registry
import Testing
import TestSupport

/// The DNS codec and the zone: queries read (EDNS0, compression, every malformed shape
/// answered or dropped), responses written and read back (compression, truncation that
/// keeps the message well formed), and the names the registry answers.
@Suite struct DNSCodecTests {
    /// A query as dig sends it: id, RD, one question, optionally an OPT record.
    static func query(_ name: String, type: UInt16, id: UInt16 = 0x1234, edns: UInt16? = nil, version: UInt8 = 0) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns == nil ? 0 : 1]
        for label in name.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += Array(label.utf8)
        }
        bytes += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        if let edns { bytes += [0, 0, 41, UInt8(edns >> 8), UInt8(edns & 0xFF), 0, version, 0, 0, 0, 0] }
        return bytes
    }

    static func parse(_ bytes: [UInt8]) -> Result<DNSQuery, DNSQueryFailure> {
        bytes.withUnsafeBufferPointer { DNSReader.parseQuery($0) }
    }

    static func read(_ bytes: [UInt8]) -> DNSReader.Message? {
        bytes.withUnsafeBufferPointer { DNSReader.parseMessage($0) }
    }

    @Test func queriesAreReadWithTheirOPTRecord() throws {
        let plain = try Self.parse(Self.query("web.service.registry", type: 1)).get()
        #expect(plain.id == 0x1234 && plain.recursionDesired && plain.question.type == 1)
        #expect(plain.question.name.description == "web.service.registry.")
        #expect(plain.ednsPayloadSize == nil)
        let edns = try Self.parse(Self.query("web.service.registry", type: 33, edns: 4096)).get()
        #expect(edns.ednsPayloadSize == 4096)
        #expect(try Self.parse(Self.query("a.registry", type: 1, edns: 100)).get().ednsPayloadSize == 512, "below 512 counts as 512")
    }

    @Test func malformedMessagesAreDroppedOrAnsweredFORMERR() {
        #expect(Self.parse([]) == .failure(.drop))
        #expect(Self.parse([1, 2, 3]) == .failure(.drop))
        var response = Self.query("a.registry", type: 1)
        response[2] |= 0x80
        #expect(Self.parse(response) == .failure(.drop), "a response is never answered")
        var notify = Self.query("a.registry", type: 1)
        notify[2] = 0x20  // opcode 4 (NOTIFY)
        #expect(Self.parse(notify) == .failure(.answer(id: 0x1234, opcode: 4, recursionDesired: false, code: .notImplemented)))
        let header: [UInt8] = [0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        #expect(Self.parse(header) == .failure(.answer(id: 7, opcode: 0, recursionDesired: true, code: .formatError)), "truncated question")
        // A compression pointer to itself, and one forwards: no loop, no read past the end.
        #expect(Self.parse(header + [0xC0, 12, 0, 1, 0, 1]) == .failure(.answer(id: 7, opcode: 0, recursionDesired: true, code: .formatError)))
        #expect(Self.parse(header + [0xC0, 40, 0, 1, 0, 1]) == .failure(.answer(id: 7, opcode: 0, recursionDesired: true, code: .formatError)))
        #expect(Self.parse(header + [0x40, 1, 0, 0, 1, 0, 1]).isFailure, "extended label type")
        #expect(Self.parse(header + [64] + [UInt8](repeating: 0x61, count: 64) + [0, 0, 1, 0, 1]).isFailure, "a label longer than 63")
        var two = Self.query("a.registry", type: 1, edns: 1232)
        two[11] = 2
        two += [0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]
        #expect(Self.parse(two).isFailure, "two OPT records")
        var generator = SplitMix64(state: 7)
        for _ in 0..<20_000 {
            let count = Int(generator.next() % 64)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            _ = Self.parse(bytes)
            _ = Self.read(bytes)
        }
    }

    @Test func responsesAreCompressedAndReadBack() throws {
        let name = try #require(DNSName("web.service.registry."))
        var response = DNSResponse(id: 9)
        response.question = DNSQuestion(name: name, type: 33)
        let target = try #require(DNSName("0a000001.addr.registry."))
        response.answers = [DNSRecord(name: name, ttl: 0, data: .srv(priority: 1, weight: 100, port: 8080, target: target))]
        response.additional = [DNSRecord(name: target, ttl: 0, data: .a((10, 0, 0, 1)))]
        let (bytes, truncated) = DNSWriter.encode(response, limit: 512)
        #expect(!truncated)
        let message = try #require(Self.read(bytes))
        #expect(message.answers == response.answers && message.additional == response.additional)
        #expect(message.isAuthoritative && message.code == 0)
        // Header 12, question 26; the answer's name points at the question's (2 bytes, not 22),
        // its SRV target is whole (24); the additional name ends in a pointer to "registry.".
        #expect(bytes.count == 12 + 26 + (2 + 10 + 6 + 24) + (9 + 5 + 2 + 10 + 4))
    }

    @Test func aTruncatedAnswerIsWellFormedAndSaysSo() throws {
        let name = try #require(DNSName("big.service.registry."))
        var response = DNSResponse(id: 1)
        response.question = DNSQuestion(name: name, type: 1)
        response.answers = (0..<200).map { DNSRecord(name: name, ttl: 0, data: .a((10, 0, UInt8($0 / 256), UInt8($0 % 256)))) }
        response.ednsPayloadSize = 1232
        let (bytes, truncated) = DNSWriter.encode(response, limit: 512)
        #expect(truncated && bytes.count <= 512)
        let message = try #require(Self.read(bytes), "a truncated message must still parse")
        #expect(message.isTruncated)
        #expect(message.answers.count == (512 - 12 - 26 - 11) / 16, "as many whole records as fit")
        #expect(message.ednsPayloadSize == 1232, "the OPT record is kept")
        let (whole, cut) = DNSWriter.encode(response, limit: 65_535)
        #expect(!cut && Self.read(whole)?.answers.count == 200)
    }

    @Test func ipAddressLiterals() {
        #expect(IPAddressText.ipv4("10.0.0.1") == [10, 0, 0, 1])
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.01", "a.b.c.d", "10..0.1", "1.2.3.4.5", ""] {
            #expect(IPAddressText.ipv4(Substring(bad)) == nil, "\(bad)")
        }
        #expect(IPAddressText.ipv6("::1") == [UInt8](repeating: 0, count: 15) + [1])
        #expect(IPAddressText.ipv6("::") == [UInt8](repeating: 0, count: 16))
        #expect(IPAddressText.ipv6("fe80::1:2") == [0xfe, 0x80] + [UInt8](repeating: 0, count: 10) + [0, 1, 0, 2])
        #expect(IPAddressText.ipv6("1::") == [0, 1] + [UInt8](repeating: 0, count: 14))
        #expect(IPAddressText.ipv6("::ffff:10.0.0.1") == [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1])
        #expect(IPAddressText.ipv6("1:2:3:4:5:6:7:8")?.count == 16)
        for bad in ["1:2:3:4:5:6:7", "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "g::1", "12345::", "::1%eth0", "1.2.3.4", "host"] {
            #expect(IPAddressText.ipv6(Substring(bad)) == nil, "\(bad)")
        }
    }
}

/// The registry as a zone: which name means what, and the answers.
@Suite struct DNSZoneTests {
    let zone = DNSZone(domains: [DNSName("registry.")!, DNSName("consul.")!], ttl: 0, datacenter: "dc1")

    func instance(_ id: String, _ address: String, tags: [String] = [], zone: String? = nil, status: InstanceStatus = .up,
                  weight: Int = 100) -> InstanceSnapshot {
        InstanceSnapshot(id: id, attributes: InstanceAttributes(address: address, tags: tags, weight: weight, zone: zone, status: status),
                         registeredAt: Instant(nanoseconds: 0), lastHeartbeat: Instant(nanoseconds: 0), deadline: Instant(nanoseconds: 0),
                         ttl: .seconds(30), isProtected: false)
    }

    var registry: [String: [InstanceSnapshot]] {
        ["web": [instance("a", "http://10.0.0.1:8080", tags: ["v1"], zone: "eu-1"), instance("b", "http://10.0.0.2:8080", weight: 5),
                 instance("c", "https://[fd00::3]", tags: ["V1"]), instance("d", "http://web-4.internal:9000"),
                 instance("e", "http://10.0.0.9:1", status: .down)],
         "idle": [instance("x", "http://10.0.0.7:1", status: .outOfService)]]
    }

    func ask(_ name: String, _ type: UInt16, rotation: Int = 0) throws -> DNSResponse {
        let query = try DNSCodecTests.parse(DNSCodecTests.query(name, type: type)).get()
        return zone.answer(query, rotation: rotation) { registry[$0] }
    }

    @Test func namesUnderTheDomains() {
        func target(_ text: String) -> DNSZone.Target? { zone.target(of: DNSName(text)!)?.target }
        #expect(target("WEB.Service.Registry.") == .service(name: "web", tag: nil, zone: nil))
        #expect(target("v1.web.service.registry.") == .service(name: "web", tag: "v1", zone: nil))
        #expect(target("web.service.eu-1.registry.") == .service(name: "web", tag: nil, zone: "eu-1"))
        #expect(target("web.service.dc1.consul.") == .service(name: "web", tag: nil, zone: nil), "Consul's datacenter label")
        #expect(target("_web._tcp.service.registry.") == .service(name: "web", tag: nil, zone: nil))
        #expect(target("_web._v1.service.registry.") == .service(name: "web", tag: "v1", zone: nil))
        #expect(target("0a000001.addr.registry.") == .address([10, 0, 0, 1]))
        #expect(target("registry.") == .apex)
        #expect(target("a.b.c.service.registry.") == DNSZone.Target.none)
        #expect(target("example.com.") == nil)
        #expect(target("registry.example.com.") == nil)
    }

    @Test func addressRecordsListUPInstancesWithIPHostsInRotation() throws {
        let a = try ask("web.service.registry", 1)
        #expect(a.code == .noError && a.authoritative)
        #expect(a.answers.map(\.data) == [.a((10, 0, 0, 1)), .a((10, 0, 0, 2))])
        let rotated = try ask("web.service.registry", 1, rotation: 1)
        #expect(rotated.answers.map(\.data) == [.a((10, 0, 0, 2)), .a((10, 0, 0, 1))])
        let aaaa = try ask("web.service.registry", 28)
        #expect(aaaa.answers.map(\.data) == [.aaaa([0xfd] + [UInt8](repeating: 0, count: 14) + [3])])
        #expect(try ask("v1.web.service.registry", 1).answers.count == 1, "tags match without case")
        #expect(try ask("v1.web.service.registry", 28).answers.count == 1)
        #expect(try ask("web.service.eu-1.registry", 1).answers.count == 1)
    }

    @Test func srvRecordsCarryPortWeightAndTargets() throws {
        let srv = try ask("_web._tcp.service.registry", 33)
        let records = srv.answers.compactMap { record -> (UInt16, UInt16, String)? in
            if case .srv(_, let weight, let port, let target) = record.data { return (weight, port, target.description) }
            return nil
        }
        #expect(records.map(\.2) == ["0a000001.addr.registry.", "0a000002.addr.registry.", "fd000000000000000000000000000003.addr.registry.",
                                     "web-4.internal."])
        #expect(records.map(\.1) == [8080, 8080, 443, 9000])
        #expect(records.map(\.0) == [100, 5, 100, 100])
        #expect(srv.additional.count == 3, "the address targets' A and AAAA")
        let glue = try ask("0a000001.addr.registry", 1)
        #expect(glue.answers.map(\.data) == [.a((10, 0, 0, 1))])
    }

    @Test func negativeAnswers() throws {
        let unknown = try ask("nothing.service.registry", 1)
        #expect(unknown.code == .nameError)
        #expect(unknown.authority.first?.data.type == .soa, "negative answers carry the SOA")
        let empty = try ask("idle.service.registry", 1)
        #expect(empty.code == .noError && empty.answers.isEmpty && empty.authority.count == 1)
        #expect(try ask("web.service.registry", 16).answers.isEmpty, "TXT: no data, NOERROR")
        let outside = try ask("example.com", 1)
        #expect(outside.code == .refused && !outside.authoritative && outside.answers.isEmpty)
        #expect(try ask("registry", 6).answers.first?.data.type == .soa)
        #expect(try ask("registry", 2).answers.first?.data.type == .ns)
    }
}

extension Result {
    var isFailure: Bool {
        if case .failure = self { return true }
        return false
    }
}
