import HTTPParsing
import Registry

/// The registry as a DNS zone: which names exist under the domains it serves, and the
/// answer to a query, made from the instances a caller looks up. Pure: the server does the
/// sockets and the registry reads.
///
/// Names (matched without regard to case; `DOMAIN` is each served domain):
/// - `SERVICE.service.DOMAIN`, `TAG.SERVICE.service.DOMAIN`, and either with a zone label
///   after `service` (`SERVICE.service.ZONE.DOMAIN`; the Consul datacenter's name there means
///   no zone, so Consul's `web.service.dc1.consul` works);
/// - RFC 2782's `_SERVICE._tcp.service.DOMAIN` (any tag) and `_SERVICE._TAG.service.DOMAIN`;
/// - `HEX.addr.DOMAIN`: an instance's IP address in hex (8 or 32 digits), the target of an
///   SRV record whose instance has an IP address rather than a host name;
/// - the domain itself (SOA, NS).
///
/// A and AAAA list the UP instances, none with a critical check, whose host is an IPv4 or
/// IPv6 address, rotated by `rotation` so that plain resolvers spread the load; SRV lists
/// every such instance with a port (weight: the instance's), its target's address records in
/// the additional section. An unknown service is NXDOMAIN; a known one with nothing to list
/// is NOERROR with no answer; both carry the SOA in the authority section (negative caching,
/// RFC 2308). A name outside the domains is REFUSED: this is no recursive resolver.
public struct DNSZone: Sendable {
    /// Lower-cased, e.g. `registry.` and `consul.`.
    public var domains: [DNSName]
    public var ttl: UInt32
    /// A label that means "every zone" where a zone is written (Consul's datacenter).
    public var datacenter: String?
    /// Our UDP payload size when a query offers EDNS0 (RFC 6891; 1232 avoids fragmentation).
    public static let udpPayloadSize: UInt16 = 1232

    public init(domains: [DNSName], ttl: UInt32, datacenter: String? = nil) {
        self.domains = domains.map(\.lowercased)
        self.ttl = ttl
        self.datacenter = datacenter?.lowercased()
    }

    /// What a name under a served domain stands for.
    public enum Target: Equatable, Sendable {
        case apex
        /// Lower-cased labels, as asked.
        case service(name: String, tag: String?, zone: String?)
        case address([UInt8])
        case none
    }

    /// The domain `name` is under, and what it names there; nil outside every domain.
    public func target(of name: DNSName) -> (domain: DNSName, target: Target)? {
        let lower = name.lowercased
        guard let domain = domains.first(where: { lower.hasSuffix($0) }) else { return nil }
        let labels = lower.labels.dropLast(domain.labels.count).map { String(decoding: $0, as: UTF8.self) }
        guard !labels.isEmpty else { return (domain, .apex) }
        func zone(_ label: String?) -> String? {
            guard let label, label != datacenter else { return nil }
            return label
        }
        // Where "service" stands decides the rest: [TAG.]SERVICE.service[.ZONE].
        if let position = labels.lastIndex(of: "service"), position >= 1, labels.count - position <= 2 {
            let zoneLabel = position + 1 < labels.count ? labels[position + 1] : nil
            let before = Array(labels[..<position])
            switch before.count {
            case 1 where !before[0].hasPrefix("_"):
                return (domain, .service(name: before[0], tag: nil, zone: zone(zoneLabel)))
            case 2 where before[0].hasPrefix("_") && before[1].hasPrefix("_"):
                let service = String(before[0].dropFirst())
                let tag = String(before[1].dropFirst())
                guard !service.isEmpty, !tag.isEmpty else { return (domain, .none) }
                return (domain, .service(name: service, tag: tag == "tcp" ? nil : tag, zone: zone(zoneLabel)))
            case 2:
                return (domain, .service(name: before[1], tag: before[0], zone: zone(zoneLabel)))
            default:
                return (domain, .none)
            }
        }
        if labels.count == 2, labels[1] == "addr", let bytes = Self.hexAddress(labels[0]) {
            return (domain, .address(bytes))
        }
        return (domain, .none)
    }

    static func hexAddress(_ text: String) -> [UInt8]? {
        guard text.count == 8 || text.count == 32, text.allSatisfy(\.isHexDigit) else { return nil }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    /// `HEX.addr.DOMAIN` for an address.
    public static func addressName(_ bytes: [UInt8], domain: DNSName) -> DNSName {
        let hex = bytes.map { byte -> String in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
        return DNSName(labels: [Array(hex.utf8), Array("addr".utf8)] + domain.labels)
    }

    /// Whether a service's, tag's or zone's name can be asked for in DNS: a letter-digit-hyphen
    /// label of at most 63 octets (RFC 1035 2.3.1, RFC 1123), which `target` will have lower-cased.
    public static func isReachable(_ name: String) -> Bool {
        let utf8 = Array(name.utf8)
        guard !utf8.isEmpty, utf8.count <= 63, utf8.first != UInt8(ascii: "-"), utf8.last != UInt8(ascii: "-") else { return false }
        return utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == UInt8(ascii: "-")
        }
    }

    /// The answer to `query`. `instances` gives the instances of the services whose names,
    /// lower-cased, are the label asked (nil: no such service).
    public func answer(_ query: DNSQuery, rotation: Int, instances: (String) -> [InstanceSnapshot]?) -> DNSResponse {
        var response = DNSResponse(answering: query)
        if query.ednsPayloadSize != nil { response.ednsPayloadSize = Self.udpPayloadSize }
        if query.ednsPayloadSize != nil && query.ednsVersion != 0 {
            response.badVersion = true
            return response
        }
        guard query.question.qclass == 1 || query.question.qclass == 255,
              let (domain, target) = target(of: query.question.name) else {
            response.code = .refused
            response.authoritative = false
            return response
        }
        let type = DNSType(rawValue: query.question.type)
        let name = query.question.name
        func negative(_ code: DNSResponseCode) -> DNSResponse {
            response.code = code
            response.authority = [soa(domain)]
            return response
        }
        switch target {
        case .none:
            return negative(.nameError)
        case .apex:
            switch type {
            case .soa?: response.answers = [soa(domain)]
            case .ns?: response.answers = [DNSRecord(name: domain, ttl: ttl, data: .ns(nameServer(domain)))]
            default: return negative(.noError)
            }
            return response
        case .address(let bytes):
            let wanted: DNSType = bytes.count == 4 ? .a : .aaaa
            guard type == wanted || type == .any else { return negative(.noError) }
            response.answers = [DNSRecord(name: name, ttl: ttl, data: bytes.count == 4 ? .a((bytes[0], bytes[1], bytes[2], bytes[3])) : .aaaa(bytes))]
            return response
        case .service(let service, let tag, let zone):
            guard let all = instances(service) else { return negative(.nameError) }
            let listed = all.filter { instance in
                instance.status == .up && !instance.attributes.hasCriticalCheck
                    && (tag == nil || instance.tags.contains { $0.lowercased() == tag })
                    && (zone == nil || instance.zone?.lowercased() == zone)
            }
            switch type {
            case .a?, .aaaa?, .any?:
                for instance in listed {
                    guard let bytes = Self.ipAddress(of: instance.address) else { continue }
                    if bytes.count == 4, type != .aaaa {
                        response.answers.append(DNSRecord(name: name, ttl: ttl, data: .a((bytes[0], bytes[1], bytes[2], bytes[3]))))
                    } else if bytes.count == 16, type != .a {
                        response.answers.append(DNSRecord(name: name, ttl: ttl, data: .aaaa(bytes)))
                    }
                }
            case .srv?:
                for instance in listed {
                    guard let endpoint = InstanceEndpoint.parse(instance.address) else { continue }
                    let weight = UInt16(clamping: instance.weight)
                    if let bytes = Self.ipAddress(of: instance.address) {
                        let target = Self.addressName(bytes, domain: domain)
                        response.answers.append(DNSRecord(name: name, ttl: ttl, data: .srv(priority: 1, weight: weight, port: UInt16(endpoint.port), target: target)))
                        let glue: DNSRecordData = bytes.count == 4 ? .a((bytes[0], bytes[1], bytes[2], bytes[3])) : .aaaa(bytes)
                        if !response.additional.contains(where: { $0.name == target }) {
                            response.additional.append(DNSRecord(name: target, ttl: ttl, data: glue))
                        }
                    } else if let host = DNSName(endpoint.host) {
                        response.answers.append(DNSRecord(name: name, ttl: ttl, data: .srv(priority: 1, weight: weight, port: UInt16(endpoint.port), target: host)))
                    }
                }
            default:
                break
            }
            if response.answers.isEmpty { return negative(.noError) }
            // Rotated after choosing the records, so that each of them comes first in turn.
            if response.answers.count > 1 {
                let shift = rotation % response.answers.count
                response.answers = Array(response.answers[shift...] + response.answers[..<shift])
            }
            return response
        }
    }

    /// The IP address an instance's address names as its host: a URL's or `host:port`'s
    /// host, or the whole address when it is an address literal.
    public static func ipAddress(of address: String) -> [UInt8]? {
        let host = InstanceEndpoint.parse(address)?.host ?? address
        return IPAddressText.ipv4(Substring(host)) ?? IPAddressText.ipv6(Substring(host))
    }

    func nameServer(_ domain: DNSName) -> DNSName {
        DNSName(labels: [Array("ns".utf8)] + domain.labels)
    }

    func soa(_ domain: DNSName) -> DNSRecord {
        DNSRecord(name: domain, ttl: ttl, data: .soa(primary: nameServer(domain), mailbox: DNSName(labels: [Array("hostmaster".utf8)] + domain.labels),
                                                     serial: 1, refresh: 3600, retry: 600, expire: 86_400, minimum: ttl))
    }
}
