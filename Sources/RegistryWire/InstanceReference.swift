import JSON
import Registry

/// `POST /heartbeat`, `/deregister` and `/status`: names one instance by `id`, or by
/// `address` (the default id), with an optional or required `status`.
public struct InstanceReference: Equatable, Sendable {
    public var service: String
    public var id: String?
    public var address: String?
    public var status: InstanceStatus?

    public static let example = #"{"service":"user-service","address":"http://localhost:8001"}"#
    static let statusExample = #"{"service":"user-service","address":"http://localhost:8001","status":"DOWN"}"#

    public init(service: String, id: String? = nil, address: String? = nil, status: InstanceStatus? = nil) {
        self.service = service
        self.id = id
        self.address = address
        self.status = status
    }

    /// The instance's name in its service: the id when given, else the address.
    public var name: String { id ?? address ?? "" }

    /// The address, when it is what names the instance (no id given): the instance of that
    /// name must then be at that address, so that a reference by address never reaches an
    /// instance registered under that string as an explicit id.
    public var namingAddress: String? { id == nil ? address : nil }

    /// `statusAllowed` false for a deregistration, which has no status to set.
    public static func decode(_ body: UnsafeBufferPointer<UInt8>, statusRequired: Bool = false,
                              statusAllowed: Bool = true) -> Result<InstanceReference, WireProblem> {
        Result { () throws(WireProblem) in
            let object = try BodyObject(body, example: statusRequired ? statusExample : example)
            try object.onlyKnown(statusAllowed || statusRequired ? ["service", "address", "id", "status"] : ["service", "address", "id"])
            let service = try object.string("service", example: example)
            let id = try object.optionalString("id")
            let address = try object.optionalString("address")
            guard id != nil || address != nil else {
                throw WireProblem(message: "missing field 'address' (or 'id'); send a JSON object like \(example)")
            }
            // An address is judged by the address rules whether or not an id comes with it (the
            // id names the instance then): nothing malformed is accepted for being unused.
            if let address, let violation = Violation.checkAddress(address) {
                throw WireProblem(message: violation.message)
            }
            let status = try object.optionalStatus("status")
            if statusRequired && status == nil {
                throw WireProblem(message: "missing field 'status'; use one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return InstanceReference(service: service, id: id, address: address, status: status)
        }
    }

    public func encode() -> [UInt8] {
        var json = JSONWriter()
        json.raw("{\"service\":")
        json.string(service)
        if let id {
            json.raw(",\"id\":")
            json.string(id)
        }
        if let address {
            json.raw(",\"address\":")
            json.string(address)
        }
        if let status {
            json.raw(",\"status\":\"")
            json.raw(status.rawValue)
            json.raw("\"")
        }
        json.raw("}")
        return json.bytes
    }
}
