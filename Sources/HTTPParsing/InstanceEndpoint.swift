/// Where an instance's address points, for views that need a host and a port (Prometheus
/// targets; Consul's `Address` and `Port`): `scheme://host[:port][/path…]` (the scheme's
/// default port when it gives none: 80 for http, 443 for https), `host:port`, `[v6]:port`.
/// Anything else (a bare host, a name with no port, a path) has no endpoint.
public struct InstanceEndpoint: Equatable, Sendable {
    /// "http", "https", … (lowercased); nil for `host:port`.
    public let scheme: String?
    /// The host as written, without brackets around an IPv6 literal.
    public let host: String
    public let port: Int

    public init(scheme: String?, host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// `host:port`, bracketing an IPv6 host: a Prometheus target.
    public var target: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func parse(_ address: String) -> InstanceEndpoint? {
        var rest = Substring(address)
        var scheme: String?
        if let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
            let name = rest[..<colon]
            guard !name.isEmpty, name.utf8.allSatisfy({ isSchemeByte($0) }) else { return nil }
            scheme = name.lowercased()
            rest = rest[rest.index(colon, offsetBy: 3)...]
            // The authority ends at the path, query or fragment; user info is dropped.
            if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
            if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            // An unbracketed IPv6 literal has more colons: not host:port.
            guard !host.contains(":") else { return nil }
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else { return nil }
        let port: Int
        if let portText {
            guard let value = DecimalText.unsigned(portText), value >= 1, value <= 65_535 else { return nil }
            port = Int(value)
        } else {
            switch scheme {
            case "http"?, "ws"?: port = 80
            case "https"?, "wss"?: port = 443
            default: return nil
            }
        }
        return InstanceEndpoint(scheme: scheme, host: String(host), port: port)
    }

    private static func isSchemeByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
            || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
    }
}
