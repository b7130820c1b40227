import JSON
import Registry

/// `POST /register`: the seed's `service` and `address`, and the optional fields. The one
/// definition of the body: the client encodes it, the server decodes it.
///
/// Members this server does not know are ignored on decoding, so that clients written for
/// later versions keep working. The rules on values (name syntax, ranges) are the core's to
/// check; decoding checks shape and JSON types, and says which field is wrong and how.
public struct RegistrationRequest: Equatable, Sendable {
    public var service: String
    public var id: String?
    public var address: String
    public var fields: InstanceFields

    public static let example = #"{"service":"user-service","address":"http://localhost:8001"}"#

    public init(service: String, address: String, id: String? = nil, fields: InstanceFields = InstanceFields()) {
        self.service = service
        self.address = address
        self.id = id
        self.fields = fields
    }

    /// The name heartbeats, status changes and deregistrations use for this instance: its
    /// id when it has one, else its address.
    public var reference: InstanceReference {
        InstanceReference(service: service, id: id, address: id == nil ? address : nil)
    }

    public static func decode(_ body: UnsafeBufferPointer<UInt8>) -> Result<RegistrationRequest, WireProblem> {
        Result { () throws(WireProblem) in
            let object = try BodyObject(body, example: example)
            try object.onlyKnown(["service", "address", "id", "tags", "metadata", "weight", "zone", "status", "ttl_seconds", "check", "checks"])
            var fields = InstanceFields()
            fields.tags = try object.optionalStringArray("tags")
            fields.metadata = try object.optionalStringMap("metadata")
            fields.weight = try object.optionalInteger("weight")
            if object.has("zone") { fields.zone = .some(try object.nullableString("zone")) }
            fields.status = try object.optionalStatus("status")
            if object.has("ttl_seconds") {
                // The number goes to the core as it was sent; it checks the bounds first.
                fields.ttl = try object.nullableNumber("ttl_seconds").map(TTLRequest.seconds) ?? .serverDefault
            }
            let address = try object.string("address", example: example)
            let id = try object.optionalString("id")
            fields.checks = try CheckDefinition.decode(from: object, instance: id ?? address)
            return RegistrationRequest(service: try object.string("service", example: example), address: address, id: id, fields: fields)
        }
    }

    public func encode() -> [UInt8] {
        var json = JSONWriter()
        json.raw("{\"service\":")
        json.string(service)
        json.raw(",\"address\":")
        json.string(address)
        if let id {
            json.raw(",\"id\":")
            json.string(id)
        }
        if let tags = fields.tags {
            json.raw(",\"tags\":")
            json.strings(tags)
        }
        if let metadata = fields.metadata {
            json.raw(",\"metadata\":{")
            json.members(metadata)
            json.raw("}")
        }
        if let weight = fields.weight {
            json.raw(",\"weight\":")
            json.integer(weight)
        }
        if let zone = fields.zone {
            json.raw(",\"zone\":")
            if let zone { json.string(zone) } else { json.raw("null") }
        }
        if let status = fields.status {
            json.raw(",\"status\":\"")
            json.raw(status.rawValue)
            json.raw("\"")
        }
        switch fields.ttl {
        case nil: break
        case .serverDefault?: json.raw(",\"ttl_seconds\":null")
        case .seconds(let seconds)?:
            json.raw(",\"ttl_seconds\":")
            json.raw(Violation.numberText(seconds))
        case .never?:
            // Not a choice of the native API: Consul's registrations only.
            break
        }
        if let checks = fields.checks {
            json.raw(",\"checks\":[")
            for (position, check) in checks.filter(\.isActive).enumerated() {
                if position > 0 { json.raw(",") }
                CheckDefinition.encode(check, into: &json)
            }
            json.raw("]")
        }
        json.raw("}")
        return json.bytes
    }
}
