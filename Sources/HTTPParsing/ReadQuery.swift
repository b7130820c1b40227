import RegistryWire
import Registry

/// The query string of a read, decoded and checked.
///
/// Unknown parameters are refused rather than ignored: a misspelt filter (`tags=` for
/// `tag=`) silently matching everything is worse than a 400.
public struct ReadQuery: Equatable {
    public enum StatusFilter: Hashable {
        case only(InstanceStatus)
        case any
    }

    /// What the instances' checks must say: by default (`passing`) none is critical (a
    /// warning keeps an instance listed); `critical` lists the failing ones; `any` all.
    /// `status=any` alone means `health=any` as well: everything the service holds.
    public enum HealthFilter: String, Hashable, CaseIterable {
        case passing
        case critical
        case any

        public func admits(_ attributes: InstanceAttributes) -> Bool {
            switch self {
            case .passing: return !attributes.hasCriticalCheck
            case .critical: return attributes.hasCriticalCheck
            case .any: return true
            }
        }
    }

    /// Both filters of what an instance says about itself, as a key for cached candidates.
    public struct Standing: Hashable {
        public let status: StatusFilter
        public let health: HealthFilter

        public func admits(_ attributes: InstanceAttributes) -> Bool {
            if case .only(let wanted) = status, attributes.status != wanted { return false }
            return health.admits(attributes)
        }
    }

    public enum Pick: String, Equatable, CaseIterable {
        case roundRobin = "round-robin"
        case random
        case weighted
    }

    public var tags: [String] = []
    public var zone: String?
    public var metadata: [MetadataEntry] = []
    public var status: StatusFilter = .only(.up)
    /// nil: `passing`, or `any` with `status=any`.
    public var healthParameter: HealthFilter?
    public var pick: Pick?
    public var limit: Int?
    /// A blocking query: answer once the index is above this.
    public var index: UInt64?
    public var wait: Duration?

    /// The wait of a blocking query that names none (before the server's `--max-wait`).
    public static let defaultWait: Duration = .seconds(300)

    /// The filter, canonically: two queries with the same key list the same instances in the
    /// same order (when neither picks), whatever their `index` and `wait`.
    public var health: HealthFilter { healthParameter ?? (status == .any ? .any : .passing) }
    public var standing: Standing { Standing(status: status, health: health) }

    public var filterKey: String {
        var key = "s=" + (status == .any ? "any" : { if case .only(let only) = status { return only.rawValue }; return "" }())
        key += "|h=" + health.rawValue
        if !tags.isEmpty { key += "|t=" + tags.joined(separator: "\u{1}") }
        if let zone { key += "|z=" + zone }
        for entry in metadata { key += "|m=" + entry.key + "\u{1}" + entry.value }
        if let limit { key += "|l=\(limit)" }
        return key
    }

    /// True when the answer is the plain, cacheable one: UP instances, no filter, no pick.
    public var isDefaultListing: Bool {
        tags.isEmpty && zone == nil && metadata.isEmpty && status == .only(.up) && health == .passing && pick == nil
            && limit == nil
    }

    /// An instance listing's query (`/discover`, `/watch/{service}`); `/services` has its own
    /// (`ServicesQuery`).
    public static func parse(_ raw: UnsafeBufferPointer<UInt8>?) -> Result<ReadQuery, WireProblem> {
        Result { () throws(WireProblem) in
            var query = ReadQuery()
            try QueryPairs.each(raw) { name, value throws(WireProblem) in try query.apply(name: name, value: value) }
            return query
        }
    }

    private mutating func apply(name: String, value: String) throws(WireProblem) {
        switch name {
        case "_":
            // A cache-buster (jQuery's `cache: false`, many browser clients): ignored, whatever
            // its value. Only this one name: any other unknown name is still refused.
            break
        case "index":
            guard let index = DecimalText.unsigned(value) else {
                throw WireProblem(message: "query parameter 'index' must be a non-negative integer of at most 18 digits, got \(Violation.quoted(value))")
            }
            self.index = index
        case "wait":
            guard let wait = Self.parseWait(value) else {
                throw WireProblem(message: "query parameter 'wait' must be a duration like 500ms, 30s, 5m or a number of seconds, got \(Violation.quoted(value))")
            }
            self.wait = wait
        case "tag":
            // A value no instance could hold is a mistake, not a filter that matches nothing.
            if let violation = Violation.checkTags([value]) { throw WireProblem(message: "query parameter 'tag': " + violation.message) }
            tags.append(value)
        case "zone":
            if let violation = Violation.checkZone(value) { throw WireProblem(message: "query parameter 'zone': " + violation.message) }
            zone = value
        case "status":
            if value.lowercased() == "any" {
                status = .any
            } else if let parsed = InstanceStatus(rawValue: value.uppercased()) {
                status = .only(parsed)
            } else {
                throw WireProblem(message: "query parameter 'status' must be one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", ")) or any, got \(Violation.quoted(value))")
            }
        case "health":
            guard let parsed = HealthFilter(rawValue: value.lowercased()) else {
                throw WireProblem(message: "query parameter 'health' must be passing, critical or any, got \(Violation.quoted(value))")
            }
            healthParameter = parsed
        case "pick":
            guard let parsed = Pick(rawValue: value) else {
                throw WireProblem(message: "query parameter 'pick' must be round-robin, random or weighted, got \(Violation.quoted(value))")
            }
            pick = parsed
        case "limit":
            guard let parsed = DecimalText.unsigned(value).map(Int.init), parsed >= 1 else {
                throw WireProblem(message: "query parameter 'limit' must be a positive integer, got \(Violation.quoted(value))")
            }
            limit = parsed
        case _ where name.hasPrefix("meta.") && name.count > 5:
            let key = String(name.dropFirst(5))
            if let violation = Violation.checkMetadata([MetadataEntry(key, value)]) {
                throw WireProblem(message: "query parameter '\(Violation.shown(name))': " + violation.message)
            }
            metadata.append(MetadataEntry(key, value))
        default:
            throw WireProblem(message: "unknown query parameter '\(Violation.shown(name))'; this endpoint takes tag, zone, meta.KEY, status, health, pick, limit, index, wait")
        }
    }

    /// "500ms", "30s", "5m", "1h" or plain seconds ("2.5"): a decimal number (no sign,
    /// exponent or hex) and an optional unit.
    public static func parseWait(_ text: String) -> Duration? {
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(text)
        var scale = 1.0
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            scale = unit.seconds
            break
        }
        guard let value = DecimalText.number(number) else { return nil }
        return .nanoseconds(Int64((min(value * scale, 86_400) * 1e9).rounded()))
    }
}
