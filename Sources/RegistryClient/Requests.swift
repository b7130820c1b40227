import JSON

/// A registration: the seed's `service` and `address`, and the optional fields.
public struct InstanceRegistration: Sendable {
    public var service: String
    public var address: String
    public var id: String?
    public var tags: [String]?
    public var metadata: [(key: String, value: String)]?
    public var weight: Int?
    public var zone: String?
    public var status: String?
    public var ttlSeconds: Double?

    public init(service: String, address: String, id: String? = nil, tags: [String]? = nil,
                metadata: [(key: String, value: String)]? = nil, weight: Int? = nil, zone: String? = nil,
                status: String? = nil, ttlSeconds: Double? = nil) {
        self.service = service
        self.address = address
        self.id = id
        self.tags = tags
        self.metadata = metadata
        self.weight = weight
        self.zone = zone
        self.status = status
        self.ttlSeconds = ttlSeconds
    }

    /// The `POST /register` body.
    public var body: [UInt8] {
        var json = JSONWriter()
        json.raw("{\"service\":")
        json.string(service)
        json.raw(",\"address\":")
        json.string(address)
        if let id {
            json.raw(",\"id\":")
            json.string(id)
        }
        if let tags {
            json.raw(",\"tags\":[")
            for (position, tag) in tags.enumerated() {
                if position > 0 { json.raw(",") }
                json.string(tag)
            }
            json.raw("]")
        }
        if let metadata {
            json.raw(",\"metadata\":{")
            for (position, entry) in metadata.enumerated() {
                if position > 0 { json.raw(",") }
                json.string(entry.key)
                json.raw(":")
                json.string(entry.value)
            }
            json.raw("}")
        }
        if let weight {
            json.raw(",\"weight\":")
            json.integer(weight)
        }
        if let zone {
            json.raw(",\"zone\":")
            json.string(zone)
        }
        if let status {
            json.raw(",\"status\":")
            json.string(status)
        }
        if let ttlSeconds {
            json.raw(",\"ttl_seconds\":")
            json.raw(ttlSeconds.rounded() == ttlSeconds && abs(ttlSeconds) < 1e15 ? String(Int64(ttlSeconds)) : String(ttlSeconds))
        }
        json.raw("}")
        return json.bytes
    }

    /// The body of `POST /heartbeat`, `/deregister` and `/status` for this instance: the id
    /// when it has one, else the address (which the registry takes as the id).
    public func referenceBody(status: String? = nil) -> [UInt8] {
        Requests.instanceReference(service: service, address: id ?? address, status: status)
    }
}

public enum Requests {
    /// `{"service":…,"address":…}` (and `status`): names one instance.
    public static func instanceReference(service: String, address: String, status: String? = nil) -> [UInt8] {
        var json = JSONWriter()
        json.raw("{\"service\":")
        json.string(service)
        json.raw(",\"address\":")
        json.string(address)
        if let status {
            json.raw(",\"status\":")
            json.string(status)
        }
        json.raw("}")
        return json.bytes
    }

    /// `prefix` + the percent-encoded service name + the query.
    public static func path(_ prefix: String, service: String?, query: [(name: String, value: String)] = []) -> String {
        var path = prefix
        if let service { path += "/" + percentEncoded(service) }
        if !query.isEmpty {
            path += "?" + query.map { percentEncoded($0.name) + "=" + percentEncoded($0.value) }.joined(separator: "&")
        }
        return path
    }

    /// Everything but RFC 3986's unreserved characters is percent-encoded.
    public static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                result += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return result
    }
}
