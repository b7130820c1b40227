/// The rules every field of an instance must follow, each violation naming its rule.
///
/// They are checked before any state changes, so a broken rule never leaves a half-made
/// instance behind. The server puts `message` in its 400 reply.
public enum Violation: Error, Equatable, Sendable {
    case emptyServiceName
    case serviceNameTooLong(length: Int)
    case serviceNameCharacter(Unicode.Scalar)
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
    case badMetadataValue(key: String, reason: String)
    case weightOutOfRange(Int)
    case badZone(String, reason: String)
    case ttlOutOfRange(seconds: Double, minimum: Duration, maximum: Duration)

    public static let maxServiceNameLength = 253
    public static let maxAddressLength = 1024
    public static let maxIDLength = 256
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
        case .emptyAddress:
            return "address must not be empty"
        case .addressTooLong(let length):
            return "address is \(length) characters long; the limit is \(Self.maxAddressLength)"
        case .addressControlCharacter(let scalar):
            return "address contains the control character \(scalar.forMessage); only printable characters are allowed"
        case .emptyID:
            return "id must not be empty (leave it out to use the address)"
        case .idTooLong(let length):
            return "id is \(length) characters long; the limit is \(Self.maxIDLength)"
        case .idControlCharacter(let scalar):
            return "id contains the control character \(scalar.forMessage); only printable characters are allowed"
        case .tooManyTags(let count):
            return "tags has \(count) entries; the limit is \(Self.maxTags)"
        case .badTag(let tag, let reason):
            return "tag \"\(tag.prefix(40))\" \(reason)"
        case .duplicateTag(let tag):
            return "tag \"\(tag.prefix(40))\" appears twice in tags"
        case .tooManyMetadataEntries(let count):
            return "metadata has \(count) entries; the limit is \(Self.maxMetadataEntries)"
        case .badMetadataKey(let key, let reason):
            return "metadata key \"\(key.prefix(40))\" \(reason)"
        case .badMetadataValue(let key, let reason):
            return "metadata value of \"\(key.prefix(40))\" \(reason)"
        case .weightOutOfRange(let weight):
            return "weight must be an integer from \(Self.weightRange.lowerBound) to \(Self.weightRange.upperBound), got \(weight)"
        case .badZone(let zone, let reason):
            return "zone \"\(zone.prefix(40))\" \(reason)"
        case .ttlOutOfRange(let seconds, let minimum, let maximum):
            return "ttl_seconds must be from \(minimum.secondsText) to \(maximum.secondsText) on this server, got \(seconds.rounded() == seconds ? String(Int64(seconds)) : String(seconds))"
        }
    }

    /// Returns nil when `name` is 1–253 ASCII letters, digits, '.', '_' or '-'.
    public static func checkServiceName(_ name: String) -> Violation? {
        switch checkToken(name, maxLength: maxServiceNameLength) {
        case nil: return nil
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

    public static func checkMetadata(_ metadata: [(key: String, value: String)]) -> Violation? {
        if metadata.count > maxMetadataEntries { return .tooManyMetadataEntries(count: metadata.count) }
        for (key, value) in metadata {
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
            case .character(let scalar): return "contains the control character \(scalar.forMessage)"
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

    /// 1–maxLength Unicode scalars, none of them a control character (C0, DEL, C1).
    static func checkPrintable(_ text: String, maxLength: Int) -> TextProblem? {
        var length = 0
        for scalar in text.unicodeScalars {
            length += 1
            if scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value <= 0x9F) { return .character(scalar) }
        }
        if length == 0 { return .empty }
        return length > maxLength ? .tooLong(length) : nil
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

extension Duration {
    /// "30s", "0.5s": the shortest decimal that states the duration in seconds.
    public var secondsText: String {
        let nanos = wholeNanoseconds
        var text = String(nanos / 1_000_000_000)
        let fraction = abs(nanos % 1_000_000_000)
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 9 - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text + "s"
    }
}
