import Etcd
import JSON
import Registry

/// Where the registry keeps its state in etcd, under `--etcd-prefix` (P):
///
/// - `P` + `instances/SERVICE/ID`: one instance's durable state as JSON (`InstanceCodec`);
///   a service name holds no `/`, so the first one after the service ends it;
/// - `P` + `last-change`: put by every transaction that changes an instance, so that its
///   revision is the registry's change index even after deletions (a replica that loads
///   the store afresh starts from the same index as one that watched every change);
/// - `P` + `leader`: the elected replica, held by its lease;
/// - `P` + `replicas/NAME`: each replica's presence, held by its lease.
struct ClusterKeys {
    let prefix: [UInt8]

    init(prefix: String) {
        self.prefix = Array(prefix.utf8)
    }

    var instances: [UInt8] { prefix + Array("instances/".utf8) }
    var lastChange: [UInt8] { prefix + Array("last-change".utf8) }
    var leader: [UInt8] { prefix + Array("leader".utf8) }
    var replicas: [UInt8] { prefix + Array("replicas/".utf8) }
    var everything: (key: [UInt8], end: [UInt8]) { (prefix, prefixEnd(prefix)) }

    func instance(service: String, id: String) -> [UInt8] {
        instances + Array(service.utf8) + [UInt8(ascii: "/")] + Array(id.utf8)
    }

    func replica(_ name: String) -> [UInt8] { replicas + Array(name.utf8) }

    enum Kind: Equatable {
        case instance(service: String, id: String)
        case lastChange
        case leader
        case replica(String)
        case other
    }

    func classify(_ key: [UInt8]) -> Kind {
        guard key.starts(with: prefix) else { return .other }
        if key == lastChange { return .lastChange }
        if key == leader { return .leader }
        let instances = self.instances
        if key.starts(with: instances) {
            let rest = key[instances.count...]
            guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return .other }
            return .instance(service: String(decoding: rest[..<slash], as: UTF8.self),
                             id: String(decoding: rest[(slash + 1)...], as: UTF8.self))
        }
        let replicas = self.replicas
        if key.starts(with: replicas) { return .replica(String(decoding: key[replicas.count...], as: UTF8.self)) }
        return .other
    }
}

/// An instance's durable state as the JSON value of its etcd key, readable with `etcdctl get`:
/// `{"address","tags","metadata","weight","zone","status","ttl_ns","registered_at_ms"}`; the
/// service and id are the key's. Fields at their defaults are left out (no tags, no metadata,
/// weight 100, no zone, status UP, the server's heartbeat timeout): every byte is encoded
/// again by etcd's gateway for each replica's watch, which is most of a write's cost. The
/// registration time is wall-clock milliseconds (each replica has its own monotonic clock).
enum InstanceCodec {
    static func encode(_ state: InstanceState, wallClockOffset: Int64) -> [UInt8] {
        let attributes = state.attributes
        var json = JSONWriter(capacity: 96)
        json.raw("{\"address\":")
        json.string(attributes.address)
        if !attributes.tags.isEmpty {
            json.raw(",\"tags\":[")
            for (index, tag) in attributes.tags.enumerated() {
                if index > 0 { json.raw(",") }
                json.string(tag)
            }
            json.raw("]")
        }
        if !attributes.metadata.isEmpty {
            json.raw(",\"metadata\":{")
            for (index, entry) in attributes.metadata.enumerated() {
                if index > 0 { json.raw(",") }
                json.string(entry.key)
                json.raw(":")
                json.string(entry.value)
            }
            json.raw("}")
        }
        if attributes.weight != InstanceAttributes.defaultWeight {
            json.raw(",\"weight\":")
            json.integer(attributes.weight)
        }
        if let zone = attributes.zone {
            json.raw(",\"zone\":")
            json.string(zone)
        }
        if attributes.status != .up {
            json.raw(",\"status\":\"")
            json.raw(attributes.status.rawValue)
            json.raw("\"")
        }
        if let ttl = attributes.ttl {
            json.raw(",\"ttl_ns\":")
            json.integer(ttl.wholeNanoseconds)
        }
        json.raw(",\"registered_at_ms\":")
        json.integer((state.registeredAt.nanoseconds &+ wallClockOffset) / 1_000_000)
        json.raw("}")
        return json.bytes
    }

    struct Malformed: Error {
        let message: String
    }

    /// `wallClockOffset` is wall-clock minus monotonic nanoseconds on this replica.
    static func decode(_ bytes: [UInt8], service: String, id: String, wallClockOffset: Int64) throws(Malformed) -> InstanceState {
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            throw Malformed(message: "not JSON (\(error.message))")
        }
        func string(_ name: String) throws(Malformed) -> String {
            guard case .string(let value)? = json[member: name] else { throw Malformed(message: "no \(name)") }
            return value
        }
        func integer(_ name: String) -> Int64? {
            guard case .number(let value)? = json[member: name] else { return nil }
            return Int64(exactly: value)
        }
        var attributes = InstanceAttributes(address: try string("address"))
        if case .array(let tags)? = json[member: "tags"] {
            attributes.tags = tags.compactMap { if case .string(let tag) = $0 { return tag } else { return nil } }
        }
        if case .object(let members)? = json[member: "metadata"] {
            attributes.metadata = members.compactMap { member in
                if case .string(let value) = member.value { return MetadataEntry(member.name, value) } else { return nil }
            }
        }
        if let weight = integer("weight") { attributes.weight = Int(weight) }
        if case .string(let zone)? = json[member: "zone"] { attributes.zone = zone }
        if case .string(let text)? = json[member: "status"] {
            guard let status = InstanceStatus(rawValue: text) else { throw Malformed(message: "an unknown status '\(text)'") }
            attributes.status = status
        }
        if let ttl = integer("ttl_ns") { attributes.ttl = .nanoseconds(ttl) }
        let registeredMillis = integer("registered_at_ms") ?? 0
        return InstanceState(service: service, id: id, attributes: attributes,
                             registeredAt: Instant(nanoseconds: registeredMillis &* 1_000_000 &- wallClockOffset))
    }
}
