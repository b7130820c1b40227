import JSON

/// What etcd's v3 JSON gateway answers and takes, as far as the registry uses it. The
/// gateway's rules: keys and values are base64, int64 fields are strings, and fields that
/// are false, zero or empty are left out (`succeeded` is absent when a transaction failed).

public struct ResponseHeader: Equatable, Sendable {
    public var revision: Int64
    public var memberID: String
    public var raftTerm: Int64

    init(_ json: JSONValue?) {
        revision = Int64(json?[member: "revision"]?.stringValue ?? "") ?? 0
        memberID = json?[member: "member_id"]?.stringValue ?? ""
        raftTerm = Int64(json?[member: "raft_term"]?.stringValue ?? "") ?? 0
    }
}

public struct KeyValue: Equatable, Sendable {
    public var key: [UInt8]
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    public var lease: Int64

    public var keyText: String { String(decoding: key, as: UTF8.self) }

    init(_ json: JSONValue) throws(EtcdError) {
        guard let key = json[member: "key"]?.stringValue.flatMap(Base64.decode) else {
            throw EtcdError(.malformed, "a key-value without a base64 key")
        }
        self.key = key
        if let value = json[member: "value"] {
            guard let bytes = value.stringValue.flatMap(Base64.decode) else { throw EtcdError(.malformed, "a value that is not base64") }
            self.value = bytes
        } else {
            self.value = []
        }
        createRevision = json.int64(member: "create_revision")
        modRevision = json.int64(member: "mod_revision")
        version = json.int64(member: "version")
        lease = json.int64(member: "lease")
    }
}

/// A condition of a transaction, on one key.
public struct Compare: Equatable, Sendable {
    public enum Target: String, Sendable { case version = "VERSION", create = "CREATE", mod = "MOD", value = "VALUE", lease = "LEASE" }
    public enum Result: String, Sendable { case equal = "EQUAL", greater = "GREATER", less = "LESS", notEqual = "NOT_EQUAL" }

    public var key: [UInt8]
    public var target: Target
    public var result: Result
    public var number: Int64
    public var value: [UInt8]

    /// The key was last changed at `revision` (0: the key does not exist).
    public static func modRevision(_ key: [UInt8], equals revision: Int64) -> Compare {
        Compare(key: key, target: .mod, result: .equal, number: revision, value: [])
    }

    /// The key was created at `revision` (0: the key does not exist).
    public static func createRevision(_ key: [UInt8], equals revision: Int64) -> Compare {
        Compare(key: key, target: .create, result: .equal, number: revision, value: [])
    }

    /// The key is held by `lease`.
    public static func lease(_ key: [UInt8], equals lease: Int64) -> Compare {
        Compare(key: key, target: .lease, result: .equal, number: lease, value: [])
    }

    func write(to json: inout JSONWriter) {
        json.raw("{\"key\":")
        json.string(Base64.encode(key))
        json.raw(",\"target\":\"")
        json.raw(target.rawValue)
        json.raw("\",\"result\":\"")
        json.raw(result.rawValue)
        json.raw("\",")
        switch target {
        case .version: json.raw("\"version\":\"")
        case .create: json.raw("\"create_revision\":\"")
        case .mod: json.raw("\"mod_revision\":\"")
        case .lease: json.raw("\"lease\":\"")
        case .value:
            json.raw("\"value\":")
            json.string(Base64.encode(value))
            json.raw("}")
            return
        }
        json.integer(number)
        json.raw("\"}")
    }
}

/// One operation of a transaction.
public enum Operation: Equatable, Sendable {
    case put(key: [UInt8], value: [UInt8], lease: Int64)
    case delete(key: [UInt8], rangeEnd: [UInt8]?)
    case range(key: [UInt8], rangeEnd: [UInt8]?)

    public static func put(_ key: [UInt8], _ value: [UInt8]) -> Operation { .put(key: key, value: value, lease: 0) }
    public static func delete(_ key: [UInt8]) -> Operation { .delete(key: key, rangeEnd: nil) }

    func write(to json: inout JSONWriter) {
        switch self {
        case .put(let key, let value, let lease):
            json.raw("{\"request_put\":{\"key\":")
            json.string(Base64.encode(key))
            json.raw(",\"value\":")
            json.string(Base64.encode(value))
            if lease != 0 {
                json.raw(",\"lease\":\"")
                json.integer(lease)
                json.raw("\"")
            }
            json.raw("}}")
        case .delete(let key, let rangeEnd):
            json.raw("{\"request_delete_range\":{\"key\":")
            json.string(Base64.encode(key))
            if let rangeEnd {
                json.raw(",\"range_end\":")
                json.string(Base64.encode(rangeEnd))
            }
            json.raw("}}")
        case .range(let key, let rangeEnd):
            json.raw("{\"request_range\":{\"key\":")
            json.string(Base64.encode(key))
            if let rangeEnd {
                json.raw(",\"range_end\":")
                json.string(Base64.encode(rangeEnd))
            }
            json.raw("}}")
        }
    }
}

public struct RangeResponse: Equatable, Sendable {
    public var header: ResponseHeader
    public var kvs: [KeyValue]
    public var more: Bool
    public var count: Int64

    init(_ json: JSONValue) throws(EtcdError) {
        header = ResponseHeader(json[member: "header"])
        var kvs: [KeyValue] = []
        if case .array(let items)? = json[member: "kvs"] {
            kvs.reserveCapacity(items.count)
            for item in items { kvs.append(try KeyValue(item)) }
        }
        self.kvs = kvs
        more = json[member: "more"] == .bool(true)
        count = json.int64(member: "count")
    }
}

public struct TxnResponse: Equatable, Sendable {
    public var header: ResponseHeader
    public var succeeded: Bool
    /// The key-values of the `range` operations that ran (of the branch taken), in order.
    public var ranges: [[KeyValue]]

    init(_ json: JSONValue) throws(EtcdError) {
        header = ResponseHeader(json[member: "header"])
        succeeded = json[member: "succeeded"] == .bool(true)
        var ranges: [[KeyValue]] = []
        if case .array(let items)? = json[member: "responses"] {
            for item in items {
                guard let range = item[member: "response_range"] else { continue }
                var kvs: [KeyValue] = []
                if case .array(let found)? = range[member: "kvs"] {
                    for entry in found { kvs.append(try KeyValue(entry)) }
                }
                ranges.append(kvs)
            }
        }
        self.ranges = ranges
    }
}

public struct LeaseGrant: Equatable, Sendable {
    public var header: ResponseHeader
    public var id: Int64
    public var ttl: Int64
}

public struct WatchEvent: Equatable, Sendable {
    public enum Kind: Sendable { case put, delete }
    public var kind: Kind
    public var kv: KeyValue
}

/// One message of a watch stream.
public struct WatchResponse: Equatable, Sendable {
    public var header: ResponseHeader
    public var created: Bool
    public var canceled: Bool
    /// Set when the watch was canceled because etcd compacted past its start revision.
    public var compactRevision: Int64
    public var cancelReason: String
    public var events: [WatchEvent]

    init(_ json: JSONValue) throws(EtcdError) {
        header = ResponseHeader(json[member: "header"])
        created = json[member: "created"] == .bool(true)
        canceled = json[member: "canceled"] == .bool(true)
        compactRevision = json.int64(member: "compact_revision")
        cancelReason = json[member: "cancel_reason"]?.stringValue ?? ""
        var events: [WatchEvent] = []
        if case .array(let items)? = json[member: "events"] {
            events.reserveCapacity(items.count)
            for item in items {
                guard let kv = item[member: "kv"] else { throw EtcdError(.malformed, "a watch event without kv") }
                let kind: WatchEvent.Kind = item[member: "type"]?.stringValue == "DELETE" ? .delete : .put
                events.append(WatchEvent(kind: kind, kv: try KeyValue(kv)))
            }
        }
        self.events = events
    }
}

/// What a member says of itself (`/v3/maintenance/status`).
public struct MemberStatus: Equatable, Sendable {
    public var header: ResponseHeader
    public var version: String
    public var leader: String
    public var raftIndex: Int64
    public var dbSize: Int64
    public var errors: [String]
}

/// The first key after every key that starts with `prefix`: a prefix's `range_end`.
public func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
        if last < 0xFF {
            end[end.count - 1] = last + 1
            return end
        }
        end.removeLast()
    }
    return [0]
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// An int64 as the gateway writes it (a string), or as a plain number; 0 when absent.
    func int64(member name: String) -> Int64 {
        switch self[member: name] {
        case .string(let text)?: return Int64(text) ?? 0
        case .number(let value)?: return Int64(exactly: value) ?? 0
        default: return 0
        }
    }
}
