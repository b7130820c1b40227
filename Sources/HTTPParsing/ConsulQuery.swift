import Registry
import RegistryWire

/// The query string of a Consul API call, as Consul reads it: `index` and `wait` (a blocking
/// query: `wait` is a Go duration such as `120000ms`, `30s`, `5m`, Consul's default 5 minutes
/// and its cap 10), `passing`, `tag` (repeatable), `dc`, `node-meta` (repeatable `key:value`),
/// `token`, `note`, `enable`, `reason`. Parameters that change nothing here (`stale`,
/// `consistent`, `cached`, `near`, `ns`, `partition`, `peer`, `replace-existing-checks`, …)
/// are accepted and ignored, as Consul ignores parameters it does not know; `filter` is
/// refused, since ignoring it would list more than was asked for.
public struct ConsulQuery: Equatable, Sendable {
    public var index: UInt64?
    public var wait: Duration?
    public var passing = false
    public var tags: [String] = []
    public var datacenter: String?
    public var nodeMeta: [MetadataEntry] = []
    public var token: String?
    public var note: String?
    public var enable: Bool?
    public var reason: String?

    public static let defaultWait = Duration.seconds(300)
    public static let maximumWait = Duration.seconds(600)

    public init() {}

    /// The wait a blocking query gets: the one asked for (Consul's default without one),
    /// at most Consul's 10 minutes and `cap`.
    public func effectiveWait(cap: Duration) -> Duration {
        min(wait ?? Self.defaultWait, Self.maximumWait, cap)
    }

    public static func parse(_ raw: UnsafeBufferPointer<UInt8>?) -> Result<ConsulQuery, WireProblem> {
        Result { () throws(WireProblem) in
            var query = ConsulQuery()
            try QueryPairs.each(raw) { name, value throws(WireProblem) in try query.apply(name: name, value: value) }
            return query
        }
    }

    private mutating func apply(name: String, value: String) throws(WireProblem) {
        switch name {
        case "index":
            guard let parsed = DecimalText.unsigned(value) else { throw WireProblem(message: "Invalid index: \(Violation.quoted(value))") }
            index = parsed
        case "wait":
            guard let parsed = DurationText.parse(value) else { throw WireProblem(message: "Invalid wait time: \(Violation.quoted(value))") }
            wait = parsed
        case "passing":
            guard let flag = Self.bool(value) else { throw WireProblem(message: "Invalid value for ?passing: \(Violation.quoted(value))") }
            passing = flag
        case "tag":
            tags.append(value)
        case "dc":
            if !value.isEmpty { datacenter = value }
        case "node-meta":
            guard let colon = value.firstIndex(of: ":") else {
                throw WireProblem(message: "Invalid node-meta: \(Violation.quoted(value)); give key:value")
            }
            nodeMeta.append(MetadataEntry(String(value[..<colon]), String(value[value.index(after: colon)...])))
        case "token":
            token = value
        case "note":
            note = value
        case "enable":
            guard let flag = Self.bool(value), !value.isEmpty else {
                throw WireProblem(message: "Invalid value for enable: \(Violation.quoted(value))")
            }
            enable = flag
        case "reason":
            reason = value
        case "filter":
            throw WireProblem(message: "filter expressions are not supported by this registry; filter with tag, passing and node-meta")
        default:
            break
        }
    }

    /// Go's `strconv.ParseBool`, with a bare parameter (`?passing`) meaning true.
    static func bool(_ text: String) -> Bool? {
        switch text {
        case "", "1", "t", "T", "true", "TRUE", "True": return true
        case "0", "f", "F", "false", "FALSE", "False": return false
        default: return nil
        }
    }
}
