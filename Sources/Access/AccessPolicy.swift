import JSON

/// A service-name pattern from the ACL file: a service name in which `*` stands for any
/// run of characters (`payment-*`, `*-internal`, `*`).
public struct ServicePattern: Equatable, Sendable, CustomStringConvertible {
    public let text: String
    private let bytes: [UInt8]
    public let matchesEverything: Bool

    /// Nil, with the reason, when `text` holds something a service name cannot.
    public static func parse(_ text: String) -> Result<ServicePattern, AccessPolicy.Problem> {
        guard !text.isEmpty else { return .failure(.init("a pattern is empty; use \"*\" for every service")) }
        guard text.utf8.count <= 253 else { return .failure(.init("the pattern \"\(text.prefix(40))…\" is longer than a service name may be")) }
        for byte in text.utf8 {
            let allowed = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "*")
            guard allowed else {
                return .failure(.init("the pattern \"\(text)\" holds a character no service name has; "
                    + "names are letters, digits, '.', '_' and '-', and '*' stands for any run of them"))
            }
        }
        return .success(ServicePattern(text: text))
    }

    private init(text: String) {
        self.text = text
        bytes = Array(text.utf8)
        matchesEverything = bytes.allSatisfy { $0 == UInt8(ascii: "*") }
    }

    public var description: String { text }

    /// Whether `name` matches: `*` matches any run of bytes, everything else itself.
    public func matches<Name: Collection>(_ name: Name) -> Bool where Name.Element == UInt8 {
        if matchesEverything { return true }
        let name = Array(name)
        // The classic linear glob: on a mismatch, retry from the last `*` one byte further on.
        var p = 0, n = 0
        var star = -1, resume = 0
        while n < name.count {
            if p < bytes.count, bytes[p] == UInt8(ascii: "*") {
                star = p
                resume = n
                p += 1
            } else if p < bytes.count, bytes[p] == name[n] {
                p += 1
                n += 1
            } else if star >= 0 {
                p = star + 1
                resume += 1
                n = resume
            } else {
                return false
            }
        }
        while p < bytes.count, bytes[p] == UInt8(ascii: "*") { p += 1 }
        return p == bytes.count
    }
}

/// What a caller may do: read and write the services its patterns match, and, as an
/// operator, everything (metrics, `/cluster`, the replicas' own routes, any service).
public struct Grant: Equatable, Sendable {
    public var read: [ServicePattern]
    public var write: [ServicePattern]
    public var isOperator: Bool
    /// What the entry's callers may hold and how fast they may ask (absent: no bound beyond
    /// the registry's own).
    public var limits = Limits()

    /// An entry's quotas. `maxInstances` and `maxServices` bound what the services it may
    /// write hold together (its namespace: whoever registered them); `requestsPerSecond` and
    /// `burst` are a token bucket shared by every request the entry's callers send.
    public struct Limits: Equatable, Sendable {
        public var maxInstances: Int?
        public var maxServices: Int?
        public var requestsPerSecond: Double?
        public var burst: Int?

        public init(maxInstances: Int? = nil, maxServices: Int? = nil, requestsPerSecond: Double? = nil, burst: Int? = nil) {
            self.maxInstances = maxInstances
            self.maxServices = maxServices
            self.requestsPerSecond = requestsPerSecond
            self.burst = burst
        }

        public var boundsHoldings: Bool { maxInstances != nil || maxServices != nil }
        /// The bucket's size: `burst`, else one second's worth (at least 1).
        public var bucketSize: Double { burst.map(Double.init) ?? max(1, (requestsPerSecond ?? 1).rounded(.up)) }
    }

    public init(read: [ServicePattern] = [], write: [ServicePattern] = [], isOperator: Bool = false) {
        self.read = read
        self.write = write
        self.isOperator = isOperator
    }

    /// No ACL file: the registry is open, as it always was.
    public static let everything = Grant(read: [], write: [], isOperator: true)
    public static let nothing = Grant()

    /// Writing a service implies reading it: a registration's answer and a status change's
    /// effects are the service's state.
    public func mayRead<Name: Collection>(_ service: Name) -> Bool where Name.Element == UInt8 {
        isOperator || read.contains { $0.matches(service) } || write.contains { $0.matches(service) }
    }

    public func mayRead(_ service: String) -> Bool { mayRead(service.utf8) }

    public func mayWrite<Name: Collection>(_ service: Name) -> Bool where Name.Element == UInt8 {
        isOperator || write.contains { $0.matches(service) }
    }

    public func mayWrite(_ service: String) -> Bool { mayWrite(service.utf8) }

    /// Whether every service may be read: filters are skipped then.
    public var readsEverything: Bool {
        isOperator || read.contains(where: \.matchesEverything) || write.contains(where: \.matchesEverything)
    }

    /// Whether some service may be read at all.
    public var readsSomething: Bool { isOperator || !read.isEmpty || !write.isEmpty }

    /// Whether any service may be written with this grant.
    public var writesSomething: Bool { isOperator || !write.isEmpty }

    /// "read on payment-*, write on payment-*", for logs.
    public var summary: String {
        if isOperator { return "operator" }
        var parts: [String] = []
        if !read.isEmpty { parts.append("read on " + read.map(\.text).joined(separator: " ")) }
        if !write.isEmpty { parts.append("write on " + write.map(\.text).joined(separator: " ")) }
        return parts.isEmpty ? "nothing" : parts.joined(separator: ", ")
    }
}

/// Who a request speaks for, once its token (or its absence) has been looked up.
public enum Caller: Equatable, Sendable {
    /// No token: the `anonymous` entry's grant.
    case anonymous(Grant)
    /// A token the policy knows, by the entry's name (never the token itself).
    case token(name: String, Grant)
    /// A token was sent, and no entry holds it.
    case unknownToken

    public var grant: Grant {
        switch self {
        case .anonymous(let grant), .token(_, let grant): return grant
        case .unknownToken: return .nothing
        }
    }
}

/// The ACL file, parsed and checked: tokens with their grants, and what a request without a
/// token may do. Pure: the server reads the file and hands the bytes over.
///
///     {"tokens": [
///        {"name": "ops",      "token": "…",  "operator": true},
///        {"name": "payments", "sha256": "…", "write": ["payment-*"], "read": ["*"]},
///        {"name": "reader",   "token": "…",  "read": ["*"]}],
///      "anonymous": {"read": ["*"]}}
public struct AccessPolicy: Sendable {
    public struct Problem: Error, Equatable, Sendable {
        public let message: String
        public init(_ message: String) { self.message = message }
    }

    public struct Entry: Sendable {
        public let name: String
        /// SHA-256 of the token's bytes; nil for an entry that only a certificate matches.
        public let digest: [UInt8]?
        public let certSubject: String?
        public let grant: Grant
    }

    public let entries: [Entry]
    public let anonymous: Grant

    /// Tokens shorter than this are refused in the file: a registry decides where traffic
    /// goes, and a short token can be guessed.
    public static let minimumTokenLength = 16

    public init(entries: [Entry], anonymous: Grant) {
        self.entries = entries
        self.anonymous = anonymous
    }

    public static func parse(_ bytes: [UInt8]) throws(Problem) -> AccessPolicy {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw Problem("the file is not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object(let members) = document else {
            throw Problem("the file must hold a JSON object with \"tokens\" and \"anonymous\", not \(document.kindDescription)")
        }
        try refuseUnknown(members, known: ["tokens", "anonymous"], in: "the file")
        var entries: [Entry] = []
        if let tokens = document[member: "tokens"] {
            guard case .array(let list) = tokens else { throw Problem("\"tokens\" must be an array, not \(tokens.kindDescription)") }
            for (index, item) in list.enumerated() {
                entries.append(try entry(item, index: index))
            }
        }
        var names = Set<String>(), digests = Set<[UInt8]>()
        for entry in entries {
            guard names.insert(entry.name).inserted else { throw Problem("two tokens are named \"\(entry.name)\"; names must be unique") }
            if let digest = entry.digest, !digests.insert(digest).inserted {
                throw Problem("the token \"\(entry.name)\" is the same token as an earlier entry's; give each token once")
            }
        }
        var anonymous = Grant.nothing
        if let value = document[member: "anonymous"] {
            guard case .object(let fields) = value else {
                throw Problem("\"anonymous\" must be an object such as {\"read\": [\"*\"]}, not \(value.kindDescription)")
            }
            try refuseUnknown(fields, known: Set(["read", "write", "operator"]).union(limitKeys), in: "\"anonymous\"")
            anonymous = try grant(value, in: "\"anonymous\"")
        }
        return AccessPolicy(entries: entries, anonymous: anonymous)
    }

    private static func entry(_ item: JSONValue, index: Int) throws(Problem) -> Entry {
        let place = "token \(index + 1)"
        guard case .object(let fields) = item else { throw Problem("\(place) must be an object, not \(item.kindDescription)") }
        guard case .string(let name)? = item[member: "name"], !name.isEmpty else {
            throw Problem("\(place) needs a \"name\" (a non-empty string): logs and messages name tokens by it")
        }
        let named = "token \"\(name)\""
        try refuseUnknown(fields, known: Set(["name", "token", "sha256", "cert_subject", "read", "write", "operator"]).union(limitKeys),
                          in: named)
        var digest: [UInt8]?
        switch (item[member: "token"], item[member: "sha256"]) {
        case (.some, .some):
            throw Problem("\(named) gives both \"token\" and \"sha256\"; give one")
        case (.some(.string(let token)), nil):
            guard token.utf8.count >= minimumTokenLength else {
                throw Problem("\(named) is shorter than \(minimumTokenLength) bytes; use a long random token (openssl rand -hex 32)")
            }
            guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw Problem("\(named) holds spaces or characters outside printable ASCII, which no HTTP header carries intact")
            }
            digest = SHA256.digest(token.utf8)
        case (nil, .some(.string(let hex))):
            guard let bytes = Self.hexBytes(hex), bytes.count == 32 else {
                throw Problem("the \"sha256\" of \(named) must be 64 hex digits (the SHA-256 of the token: printf %s TOKEN | sha256sum)")
            }
            digest = bytes
        case (.some(let value), nil):
            throw Problem("the \"token\" of \(named) must be a string, not \(value.kindDescription)")
        case (nil, .some(let value)):
            throw Problem("the \"sha256\" of \(named) must be a string, not \(value.kindDescription)")
        case (nil, nil):
            digest = nil
        }
        var certSubject: String?
        if let value = item[member: "cert_subject"] {
            guard case .string(let subject) = value, !subject.isEmpty else {
                throw Problem("the \"cert_subject\" of \(named) must be a non-empty string (a certificate's CN or DNS/URI name)")
            }
            certSubject = subject
        }
        guard digest != nil || certSubject != nil else {
            throw Problem("\(named) has no \"token\", \"sha256\" or \"cert_subject\": nothing could ever present it")
        }
        return Entry(name: name, digest: digest, certSubject: certSubject, grant: try grant(item, in: named))
    }

    private static func grant(_ value: JSONValue, in place: String) throws(Problem) -> Grant {
        var grant = Grant()
        grant.read = try patterns(value[member: "read"], key: "read", in: place)
        grant.write = try patterns(value[member: "write"], key: "write", in: place)
        switch value[member: "operator"] {
        case nil: break
        case .bool(let flag)?: grant.isOperator = flag
        case let other?: throw Problem("\"operator\" of \(place) must be true or false, not \(other.kindDescription)")
        }
        grant.limits.maxInstances = try count(value[member: "max_instances"], key: "max_instances", in: place)
        grant.limits.maxServices = try count(value[member: "max_services"], key: "max_services", in: place)
        grant.limits.burst = try count(value[member: "burst"], key: "burst", in: place)
        switch value[member: "requests_per_second"] {
        case nil: break
        case .number(let rate)? where rate > 0 && rate <= 1_000_000:
            grant.limits.requestsPerSecond = rate
        case let other?:
            throw Problem("\"requests_per_second\" of \(place) must be a number above 0 and at most 1000000, not \(shown(other))")
        }
        if grant.limits.burst != nil && grant.limits.requestsPerSecond == nil {
            throw Problem("\"burst\" of \(place) needs \"requests_per_second\": it is the size of that rate's bucket")
        }
        return grant
    }

    private static func shown(_ value: JSONValue) -> String {
        if case .number(let number) = value { return number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number) }
        return value.kindDescription
    }

    static let limitKeys: Set<String> = ["max_instances", "max_services", "requests_per_second", "burst"]

    private static func count(_ value: JSONValue?, key: String, in place: String) throws(Problem) -> Int? {
        guard let value else { return nil }
        guard case .number(let number) = value, number >= 1, number <= 1_000_000_000, number.rounded() == number else {
            throw Problem("\"\(key)\" of \(place) must be a whole number from 1 to 1000000000, not \(shown(value))")
        }
        return Int(number)
    }

    private static func patterns(_ value: JSONValue?, key: String, in place: String) throws(Problem) -> [ServicePattern] {
        guard let value else { return [] }
        guard case .array(let items) = value else {
            throw Problem("\"\(key)\" of \(place) must be an array of service-name patterns such as [\"payment-*\"], not \(value.kindDescription)")
        }
        var patterns: [ServicePattern] = []
        for item in items {
            guard case .string(let text) = item else {
                throw Problem("\"\(key)\" of \(place) holds \(item.kindDescription); patterns are strings")
            }
            switch ServicePattern.parse(text) {
            case .success(let pattern): patterns.append(pattern)
            case .failure(let problem): throw Problem("\"\(key)\" of \(place): \(problem.message)")
            }
        }
        return patterns
    }

    private static func refuseUnknown(_ members: [JSONMember], known: Set<String>, in place: String) throws(Problem) {
        for member in members where !known.contains(member.name) {
            throw Problem("\(place) has an unknown key \"\(member.name)\"; the keys are " + known.sorted().joined(separator: ", "))
        }
    }

    private static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    // MARK: Looking a caller up

    /// The caller a request speaks for. `token` is what it sent (nil: none). Every entry's
    /// digest is compared, in constant time, whatever matches: neither which entry matched
    /// nor how many bytes agreed shows in the time taken.
    public func caller<Token: Collection>(token: Token?) -> Caller where Token.Element == UInt8 {
        guard let token else { return .anonymous(anonymous) }
        let presented = SHA256.digest(token)
        var found = -1
        for (index, entry) in entries.enumerated() {
            guard let digest = entry.digest else { continue }
            var difference: UInt8 = 0
            for position in 0..<32 { difference |= digest[position] ^ presented[position] }
            // Branch-free select: found becomes index when difference is 0.
            let equal = Int((UInt16(difference) &- 1) >> 8 & 1)
            found = equal * index + (1 - equal) * found
        }
        guard found >= 0 else { return .unknownToken }
        return .token(name: entries[found].name, entries[found].grant)
    }

    public func caller(token: String?) -> Caller { caller(token: token?.utf8) }

    /// The entry a client certificate stands for: the first whose `cert_subject` is one of the
    /// certificate's names (its CN, DNS and URI names).
    public func caller(certificateNames names: [String]) -> Caller? {
        guard !names.isEmpty else { return nil }
        for entry in entries {
            if let subject = entry.certSubject, names.contains(subject) { return .token(name: entry.name, entry.grant) }
        }
        return nil
    }
}
