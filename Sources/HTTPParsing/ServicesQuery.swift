import RegistryWire
import Registry

/// The query string of `/services` and `/watch`: a blocking query's `index` and `wait`, and
/// the filters and paging that keep a listing small whatever the registry's size.
///
/// As on instance reads, an unknown parameter or a value no service could match is refused.
public struct ServicesQuery: Equatable {
    public enum Order: String, Equatable, CaseIterable {
        /// By name (the default, and the only order an answer's `next` pages through).
        case name
        /// Services with a problem first (`ServiceSummary.hasProblem`), each part by name.
        case problems
    }

    public var filter = ServiceFilter()
    /// Only names that begin with this (case-sensitive, as names are).
    public var prefix: String?
    /// Only names that sort after this one: in name order, the `next` of the page before.
    public var after: String?
    public var order: Order = .name
    public var limit: Int?
    public var index: UInt64?
    public var wait: Duration?

    /// The most services one answer lists when `limit` is given (a page, not the registry).
    public static let maximumLimit = 10_000

    public init() {}

    /// No filter, no paging, name order: the whole listing, rendered once per change.
    public var isWholeListing: Bool { filter.isEmpty && prefix == nil && after == nil && order == .name && limit == nil }

    /// Two queries with the same key list the same services, whatever `index` and `wait`.
    public var listingKey: String {
        var key = "o=" + order.rawValue
        if let prefix { key += "|p=" + prefix }
        if let after { key += "|a=" + after }
        if let limit { key += "|l=\(limit)" }
        if !filter.tags.isEmpty { key += "|t=" + filter.tags.sorted().joined(separator: "\u{1}") }
        if let zone = filter.zone { key += "|z=" + zone }
        if let status = filter.status { key += "|s=" + status.rawValue }
        if let health = filter.health { key += "|h=" + health.rawValue }
        if filter.problemsOnly { key += "|problems" }
        return key
    }

    public static let parameters = "prefix, tag, zone, status, health, problems, order, limit, after, index, wait"

    public static func parse(_ raw: UnsafeBufferPointer<UInt8>?) -> Result<ServicesQuery, WireProblem> {
        Result { () throws(WireProblem) in
            var query = ServicesQuery()
            try QueryPairs.each(raw) { name, value throws(WireProblem) in try query.apply(name: name, value: value) }
            return query
        }
    }

    private mutating func apply(name: String, value: String) throws(WireProblem) {
        switch name {
        case "_":
            break
        case "index":
            guard let index = DecimalText.unsigned(value) else {
                throw WireProblem(message: "query parameter 'index' must be a non-negative integer of at most 18 digits, got \(Violation.quoted(value))")
            }
            self.index = index
        case "wait":
            guard let wait = ReadQuery.parseWait(value) else {
                throw WireProblem(message: "query parameter 'wait' must be a duration like 500ms, 30s, 5m or a number of seconds, got \(Violation.quoted(value))")
            }
            self.wait = wait
        case "prefix":
            // Any beginning of a valid name: characters a name may hold, at most its length.
            guard !value.isEmpty, value.utf8.count <= Violation.maxServiceNameLength,
                  value.utf8.allSatisfy(Self.isNameByte) else {
                throw WireProblem(message: "query parameter 'prefix' must be 1–\(Violation.maxServiceNameLength) of [A-Za-z0-9._-], got \(Violation.quoted(value))")
            }
            prefix = value
        case "after":
            if let violation = Violation.checkServiceName(value) { throw WireProblem(message: "query parameter 'after': " + violation.message) }
            after = value
        case "tag":
            if let violation = Violation.checkTags([value]) { throw WireProblem(message: "query parameter 'tag': " + violation.message) }
            if !filter.tags.contains(value) { filter.tags.append(value) }
        case "zone":
            if let violation = Violation.checkZone(value) { throw WireProblem(message: "query parameter 'zone': " + violation.message) }
            filter.zone = value
        case "status":
            guard let parsed = InstanceStatus(rawValue: value.uppercased()) else {
                throw WireProblem(message: "query parameter 'status' must be one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", ")), got \(Violation.quoted(value))")
            }
            filter.status = parsed
        case "health":
            guard let parsed = CheckStatus(rawValue: value.lowercased()) else {
                throw WireProblem(message: "query parameter 'health' must be one of \(CheckStatus.allCases.map(\.rawValue).joined(separator: ", ")), got \(Violation.quoted(value))")
            }
            filter.health = parsed
        case "problems":
            switch value.lowercased() {
            case "true", "1": filter.problemsOnly = true
            case "false", "0": filter.problemsOnly = false
            default: throw WireProblem(message: "query parameter 'problems' must be true or false, got \(Violation.quoted(value))")
            }
        case "order":
            guard let parsed = Order(rawValue: value.lowercased()) else {
                throw WireProblem(message: "query parameter 'order' must be name or problems, got \(Violation.quoted(value))")
            }
            order = parsed
        case "limit":
            guard let parsed = DecimalText.unsigned(value).map(Int.init), parsed >= 1, parsed <= Self.maximumLimit else {
                throw WireProblem(message: "query parameter 'limit' must be an integer from 1 to \(Self.maximumLimit), got \(Violation.quoted(value))")
            }
            limit = parsed
        default:
            throw WireProblem(message: "unknown query parameter '\(Violation.shown(name))'; this endpoint takes \(Self.parameters)")
        }
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}
