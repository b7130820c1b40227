/// The rules every field of an instance must follow, each violation naming its rule.
///
/// They are checked before any state changes, so a broken rule never leaves a half-made
/// instance behind. The server puts `message` in its 400 reply.
public enum Violation: Error, Equatable, Sendable {
    case emptyServiceName
    case serviceNameTooLong(length: Int)
    case serviceNameCharacter(Unicode.Scalar)
    case serviceNameOnlyDots
    case emptyAddress
    case addressTooLong(length: Int)
    case addressControlCharacter(Unicode.Scalar)
    case emptyID
    case idTooLong(length: Int)
    case idControlCharacter(Unicode.Scalar)
    case tooManyTags(count: Int)
    case badTag(String, reason: String)
    case duplicateTag(String)
    case tooManyMetadataEntries(count: Int)
    case badMetadataKey(String, reason: String)
    case duplicateMetadataKey(String)
    case badMetadataValue(key: String, reason: String)
    case weightOutOfRange(Int)
    case badZone(String, reason: String)
    case ttlOutOfRange(seconds: Double, minimum: Duration, maximum: Duration)
    case tooManyChecks(count: Int)
    /// `id` is the check's id as sent (empty when that is what is wrong).
    case badCheck(id: String, reason: String)

    public static let maxServiceNameLength = 253
    public static let maxAddressLength = 1024
    /// The same as an address's: an instance registered without an id is named by its
    /// address, and must stay reachable by heartbeat, status and deregistration.
    public static let maxIDLength = maxAddressLength
    public static let maxTags = 64
    public static let maxTagLength = 128
    public static let maxMetadataEntries = 64
    public static let maxMetadataKeyLength = 128
    public static let maxMetadataValueLength = 512
    public static let maxZoneLength = 128
    public static let weightRange = 1...1000

    /// A sentence for the client: which field, which rule, what was found.
    public var message: String {
        switch self {
        case .emptyServiceName:
            return "service name must not be empty"
        case .serviceNameTooLong(let length):
            return "service name is \(length) characters long; the limit is \(Self.maxServiceNameLength)"
        case .serviceNameCharacter(let scalar):
            return "service name contains \(scalar.forMessage); only letters, digits, '.', '_' and '-' are allowed"
        case .serviceNameOnlyDots:
            return "service name must not be made of dots only ('.' and '..' mean something else in a path)"
        case .emptyAddress:
            return "address must not be empty"
        case .addressTooLong(let length):
            return "address is \(length) characters long; the limit is \(Self.maxAddressLength)"
        case .addressControlCharacter(let scalar):
            return "address contains \(scalar.forMessage), a control or format character; only printable characters are allowed"
        case .emptyID:
            return "id must not be empty (leave it out to use the address)"
        case .idTooLong(let length):
            return "id is \(length) characters long; the limit is \(Self.maxIDLength)"
        case .idControlCharacter(let scalar):
            return "id contains \(scalar.forMessage), a control or format character; only printable characters are allowed"
        case .tooManyTags(let count):
            return "tags has \(count) entries; the limit is \(Self.maxTags)"
        case .badTag(let tag, let reason):
            return "tag \(Self.quoted(tag)) \(reason)"
        case .duplicateTag(let tag):
            return "tag \(Self.quoted(tag)) appears twice in tags"
        case .tooManyMetadataEntries(let count):
            return "metadata has \(count) entries; the limit is \(Self.maxMetadataEntries)"
        case .badMetadataKey(let key, let reason):
            return "metadata key \(Self.quoted(key)) \(reason)"
        case .duplicateMetadataKey(let key):
            return "metadata key \(Self.quoted(key)) appears twice"
        case .badMetadataValue(let key, let reason):
            return "metadata value of \(Self.quoted(key)) \(reason)"
        case .weightOutOfRange(let weight):
            return "weight must be an integer from \(Self.weightRange.lowerBound) to \(Self.weightRange.upperBound), got \(weight)"
        case .badZone(let zone, let reason):
            return "zone \(Self.quoted(zone)) \(reason)"
        case .ttlOutOfRange(let seconds, let minimum, let maximum):
            return "ttl_seconds must be from \(minimum.secondsText) to \(maximum.secondsText) on this server, got \(Self.numberText(seconds))"
        case .tooManyChecks(let count):
            return "an instance may have at most \(Self.maxChecks) checks, got \(count)"
        case .badCheck(let id, let reason):
            return id.isEmpty ? "check: \(reason)" : "check \(Self.quoted(id)): \(reason)"
        }
    }

    /// Returns nil when `name` is 1–253 ASCII letters, digits, '.', '_' or '-', not all dots.
    public static func checkServiceName(_ name: String) -> Violation? {
        switch checkToken(name, maxLength: maxServiceNameLength) {
        case nil: return name.utf8.allSatisfy({ $0 == UInt8(ascii: ".") }) ? .serviceNameOnlyDots : nil
        case .empty?: return .emptyServiceName
        case .tooLong(let length)?: return .serviceNameTooLong(length: length)
        case .character(let scalar)?: return .serviceNameCharacter(scalar)
        }
    }

    /// Returns nil when `address` is 1–1024 characters with no control characters. Anything
    /// else printable is allowed: addresses are URLs, host:port pairs or opaque tokens, and
    /// the registry does not interpret them.
    public static func checkAddress(_ address: String) -> Violation? {
        switch checkPrintable(address, maxLength: maxAddressLength) {
        case nil: return nil
        case .empty?: return .emptyAddress
        case .tooLong(let length)?: return .addressTooLong(length: length)
        case .character(let scalar)?: return .addressControlCharacter(scalar)
        }
    }

    public static func checkID(_ id: String) -> Violation? {
        switch checkPrintable(id, maxLength: maxIDLength) {
        case nil: return nil
        case .empty?: return .emptyID
        case .tooLong(let length)?: return .idTooLong(length: length)
        case .character(let scalar)?: return .idControlCharacter(scalar)
        }
    }

    public static func checkTags(_ tags: [String]) -> Violation? {
        if tags.count > maxTags { return .tooManyTags(count: tags.count) }
        var seen = Set<String>()
        for tag in tags {
            if let problem = checkPrintable(tag, maxLength: maxTagLength) { return .badTag(tag, reason: problem.sentence(maxTagLength)) }
            if !seen.insert(tag).inserted { return .duplicateTag(tag) }
        }
        return nil
    }

    public static func checkMetadata(_ metadata: [MetadataEntry]) -> Violation? {
        if metadata.count > maxMetadataEntries { return .tooManyMetadataEntries(count: metadata.count) }
        // A JSON object cannot repeat a key (the parser refuses it); a record built otherwise,
        // by hand or by a damaged writer, must not either: `/discover` would emit it.
        if metadata.count > 1 {
            var seen = Set<String>(minimumCapacity: metadata.count)
            for entry in metadata where !seen.insert(entry.key).inserted { return .duplicateMetadataKey(entry.key) }
        }
        for entry in metadata {
            let key = entry.key
            let value = entry.value
            // Keys are tokens so that `meta.KEY=VALUE` in a query string needs no escaping.
            if let problem = checkToken(key, maxLength: maxMetadataKeyLength) {
                return .badMetadataKey(key, reason: problem.sentence(maxMetadataKeyLength, token: true))
            }
            if let problem = checkPrintable(value, maxLength: maxMetadataValueLength), problem != .empty {
                return .badMetadataValue(key: key, reason: problem.sentence(maxMetadataValueLength))
            }
        }
        return nil
    }

    public static func checkWeight(_ weight: Int) -> Violation? {
        weightRange.contains(weight) ? nil : .weightOutOfRange(weight)
    }

    public static func checkZone(_ zone: String) -> Violation? {
        checkToken(zone, maxLength: maxZoneLength).map { .badZone(zone, reason: $0.sentence(maxZoneLength, token: true)) }
    }

    enum TextProblem: Equatable {
        case empty
        case tooLong(Int)
        case character(Unicode.Scalar)

        func sentence(_ maxLength: Int, token: Bool = false) -> String {
            switch self {
            case .empty: return "must not be empty"
            case .tooLong(let length): return "is \(length) characters long; the limit is \(maxLength)"
            case .character(let scalar) where token:
                return "contains \(scalar.forMessage); only letters, digits, '.', '_' and '-' are allowed"
            case .character(let scalar): return "contains \(scalar.forMessage), a control or format character"
            }
        }
    }

    /// 1–maxLength ASCII letters, digits, '.', '_', '-'.
    static func checkToken(_ text: String, maxLength: Int) -> TextProblem? {
        var length = 0
        for scalar in text.unicodeScalars {
            length += 1
            switch scalar.value {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2E, 0x5F, 0x2D: continue
            default: return .character(scalar)
            }
        }
        if length == 0 { return .empty }
        return length > maxLength ? .tooLong(length) : nil
    }

    /// 1–maxLength Unicode scalars, none of them a control character (C0, DEL, C1), an
    /// invisible format character (bidi overrides and isolates, zero-width joiners, BOM) or a
    /// line or paragraph separator: text that would reorder, hide or split what a log line or
    /// a terminal shows.
    static func checkPrintable(_ text: String, maxLength: Int) -> TextProblem? {
        var length = 0
        for scalar in text.unicodeScalars {
            length += 1
            if scalar.value >= 0x20 && scalar.value < 0x7F { continue }
            if isHidden(scalar) { return .character(scalar) }
        }
        if length == 0 { return .empty }
        return length > maxLength ? .tooLong(length) : nil
    }

    /// Control characters (Cc) and the Basic Multilingual Plane's format characters (Cf: bidi
    /// overrides and isolates, zero-width spaces and joiners, the BOM, the soft hyphen…) and
    /// line and paragraph separators (Zl, Zp), as Unicode 15.1 lists them. A fixed table, not
    /// the standard library's, so that the rule cannot drift from the patterns that
    /// `openapi.yaml` states for it. Format characters beyond the BMP (emoji tag sequences,
    /// musical and hieroglyph formatting) do not reorder or hide text and are allowed.
    public static func isHidden(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x20 || (value >= 0x7F && value <= 0x9F) { return true }
        guard value >= 0xAD, value <= 0xFFFB else { return false }
        for range in hiddenRanges where range.contains(value) { return true }
        return false
    }

    private static let hiddenRanges: [ClosedRange<UInt32>] = [
        0xAD...0xAD, 0x600...0x605, 0x61C...0x61C, 0x6DD...0x6DD, 0x70F...0x70F, 0x890...0x891, 0x8E2...0x8E2,
        0x180E...0x180E, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2064, 0x2066...0x206F, 0xFEFF...0xFEFF,
        0xFFF9...0xFFFB,
    ]

    /// Client text as a message quotes it: its first 40 characters in double quotes, with
    /// every hidden character written as `U+XXXX`, so that the message cannot carry what the
    /// rule refused.
    public static func quoted<Text: StringProtocol>(_ text: Text) -> String {
        "\"" + shown(text) + "\""
    }

    /// The same without the quotes.
    public static func shown<Text: StringProtocol>(_ text: Text) -> String {
        var result = ""
        for (position, scalar) in text.unicodeScalars.enumerated() {
            if position == 40 {
                result += "…"
                break
            }
            if isHidden(scalar) { result += scalar.forMessage } else { result.unicodeScalars.append(scalar) }
        }
        return result
    }

    /// A number as a message shows it: integers without a fraction, anything else (huge,
    /// tiny, negative zero) in Swift's shortest round-trip form, never through a conversion
    /// that could trap.
    public static func numberText(_ value: Double) -> String {
        if value == 0 { return "0" }
        if value.rounded() == value && abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

extension Unicode.Scalar {
    /// `'x'` for printable ASCII, `U+0007` style otherwise, so the message itself stays printable.
    fileprivate var forMessage: String {
        if value >= 0x21 && value < 0x7F { return "'\(Character(self))'" }
        if value == 0x20 { return "a space" }
        let hex = String(value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
