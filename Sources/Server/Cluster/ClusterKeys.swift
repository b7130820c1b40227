import Etcd
import JSON
import Registry
import RegistryWire

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
/// `{"address","tags","metadata","weight","zone","status","ttl_ns","checks","registered_at_ms"}`
/// (`ttl_ns` -1: no heartbeat timeout; each check `{"id","name","http"|"tcp"|"ttl_ns",
/// "method","headers","tls_skip_verify","interval_ns","timeout_ns","deregister_after_ns",
/// "status"}`); the service and id are the key's. Fields at their defaults are left out (no tags, no metadata,
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
            json.members(attributes.metadata)
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
            json.integer(ttl == InstanceAttributes.noExpiry ? -1 : ttl.wholeNanoseconds)
        }
        if !attributes.checks.isEmpty {
            json.raw(",\"checks\":[")
            for (index, check) in attributes.checks.enumerated() {
                if index > 0 { json.raw(",") }
                encode(check, into: &json)
            }
            json.raw("]")
        }
        json.raw(",\"registered_at_ms\":")
        json.integer((state.registeredAt.nanoseconds &+ wallClockOffset) / 1_000_000)
        json.raw("}")
        return json.bytes
    }

    private static func encode(_ check: HealthCheck, into json: inout JSONWriter) {
        json.raw("{\"id\":")
        json.string(check.id)
        if check.name != check.id {
            json.raw(",\"name\":")
            json.string(check.name)
        }
        switch check.probe {
        case .http(let http):
            json.raw(",\"http\":")
            json.string(http.url)
            if http.method != "GET" {
                json.raw(",\"method\":")
                json.string(http.method)
            }
            if !http.headers.isEmpty {
                json.raw(",\"headers\":[")
                for (index, header) in http.headers.enumerated() {
                    json.raw(index > 0 ? ",[" : "[")
                    json.string(header.key)
                    json.raw(",")
                    json.string(header.value)
                    json.raw("]")
                }
                json.raw("]")
            }
            if http.tlsSkipVerify { json.raw(",\"tls_skip_verify\":true") }
        case .tcp(let host, let port):
            json.raw(",\"tcp\":")
            json.string(host)
            json.raw(",\"port\":")
            json.integer(port)
        case .ttl(let ttl):
            json.raw(",\"ttl_ns\":")
            json.integer(ttl.wholeNanoseconds)
        }
        json.raw(",\"interval_ns\":")
        json.integer(check.interval.wholeNanoseconds)
        json.raw(",\"timeout_ns\":")
        json.integer(check.timeout.wholeNanoseconds)
        if let after = check.deregisterAfter {
            json.raw(",\"deregister_after_ns\":")
            json.integer(after.wholeNanoseconds)
        }
        json.raw(",\"status\":\"")
        json.raw(check.status.rawValue)
        json.raw("\"}")
    }

    private static func decodeCheck(_ json: JSONValue) throws(Malformed) -> HealthCheck {
        func integer(_ name: String) -> Int64? {
            guard case .number(let value)? = json[member: name] else { return nil }
            return Int64(exactly: value)
        }
        guard case .string(let id)? = json[member: "id"] else { throw Malformed(message: "a check without an id") }
        let probe: HealthCheck.Probe
        if case .string(let url)? = json[member: "http"] {
            var http = HealthCheck.HTTPProbe(url: url)
            if case .string(let method)? = json[member: "method"] { http.method = method }
            if case .array(let headers)? = json[member: "headers"] {
                for header in headers {
                    guard case .array(let pair) = header, pair.count == 2, case .string(let name) = pair[0], case .string(let value) = pair[1]
                    else { throw Malformed(message: "check \(id)'s headers are not [name, value] pairs") }
                    http.headers.append(MetadataEntry(name, value))
                }
            }
            if case .bool(true)? = json[member: "tls_skip_verify"] { http.tlsSkipVerify = true }
            probe = .http(http)
        } else if case .string(let host)? = json[member: "tcp"], let port = integer("port") {
            probe = .tcp(host: host, port: Int(port))
        } else if let ttl = integer("ttl_ns") {
            probe = .ttl(.nanoseconds(ttl))
        } else {
            throw Malformed(message: "check \(id) has no http, tcp or ttl_ns")
        }
        guard case .string(let text)? = json[member: "status"], let status = CheckStatus(rawValue: text) else {
            throw Malformed(message: "check \(id) has no known status")
        }
        var name = id
        if case .string(let given)? = json[member: "name"] { name = given }
        return HealthCheck(id: id, name: name, probe: probe, interval: .nanoseconds(integer("interval_ns") ?? 0),
                           timeout: .nanoseconds(integer("timeout_ns") ?? 0), deregisterAfter: integer("deregister_after_ns").map { .nanoseconds($0) },
                           status: status)
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
        if let ttl = integer("ttl_ns") { attributes.ttl = ttl == -1 ? InstanceAttributes.noExpiry : .nanoseconds(ttl) }
        if case .array(let checks)? = json[member: "checks"] {
            for check in checks { attributes.checks.append(try decodeCheck(check)) }
        }
        let registeredMillis = integer("registered_at_ms") ?? 0
        return InstanceState(service: service, id: id, attributes: attributes,
                             registeredAt: Instant(nanoseconds: registeredMillis &* 1_000_000 &- wallClockOffset))
    }
}
