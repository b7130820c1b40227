/// The rules a service name and an instance address must follow.
///
/// They are checked before any state changes, so a broken rule never leaves a half-made
/// instance behind. Each violation names the rule, for the server to put in its 400 reply.
public enum NameViolation: Error, Equatable, Sendable {
    case emptyServiceName
    case serviceNameTooLong(length: Int)
    case serviceNameCharacter(Unicode.Scalar)
    case emptyAddress
    case addressTooLong(length: Int)
    case addressControlCharacter(Unicode.Scalar)

    public static let maxServiceNameLength = 253
    public static let maxAddressLength = 1024

    /// A sentence for the client: which field, which rule, what was found.
    public var message: String {
        switch self {
        case .emptyServiceName:
            return "service name must not be empty"
        case .serviceNameTooLong(let length):
            return "service name is \(length) characters long; the limit is \(Self.maxServiceNameLength)"
        case .serviceNameCharacter(let scalar):
            return "service name contains \(scalar.debugDescriptionForMessage); only letters, digits, '.', '_' and '-' are allowed"
        case .emptyAddress:
            return "address must not be empty"
        case .addressTooLong(let length):
            return "address is \(length) characters long; the limit is \(Self.maxAddressLength)"
        case .addressControlCharacter(let scalar):
            return "address contains the control character \(scalar.debugDescriptionForMessage); only printable characters are allowed"
        }
    }

    /// Returns nil when `name` is 1–253 ASCII letters, digits, '.', '_' or '-'.
    public static func checkServiceName(_ name: String) -> NameViolation? {
        var length = 0
        for scalar in name.unicodeScalars {
            length += 1
            switch scalar.value {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2E, 0x5F, 0x2D:
                continue
            default:
                return .serviceNameCharacter(scalar)
            }
        }
        if length == 0 { return .emptyServiceName }
        if length > maxServiceNameLength { return .serviceNameTooLong(length: length) }
        return nil
    }

    /// Returns nil when `address` is 1–1024 characters (Unicode scalars) with no control
    /// characters (C0, DEL, C1). Anything else printable is allowed: addresses are URLs,
    /// host:port pairs or opaque tokens, and the registry does not interpret them.
    public static func checkAddress(_ address: String) -> NameViolation? {
        var length = 0
        for scalar in address.unicodeScalars {
            length += 1
            if scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value <= 0x9F) {
                return .addressControlCharacter(scalar)
            }
        }
        if length == 0 { return .emptyAddress }
        if length > maxAddressLength { return .addressTooLong(length: length) }
        return nil
    }
}

extension Unicode.Scalar {
    /// `'x'` for printable ASCII, `U+0007` style otherwise, so the message itself stays printable.
    fileprivate var debugDescriptionForMessage: String {
        if value >= 0x21 && value < 0x7F { return "'\(Character(self))'" }
        if value == 0x20 { return "a space" }
        let hex = String(value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
