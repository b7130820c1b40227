/// An HTTP check's URL split as the checker needs it: `http` or `https`, a host (a name, an
/// IPv4 address or a bracketed IPv6 one), a port (the scheme's default when none is given) and
/// the request target (path and query, `/` when empty). No user info, no fragment: what cannot
/// be sent as a request is refused at registration, not found wrong at the first run.
public struct CheckURL: Hashable, Sendable {
    public let isHTTPS: Bool
    /// Without brackets for IPv6.
    public let host: String
    public let port: Int
    public let target: String

    public init?(_ url: String) {
        let bytes = Array(url.utf8)
        let rest: ArraySlice<UInt8>
        if Self.hasPrefix(bytes, "http://") {
            isHTTPS = false
            rest = bytes[7...]
        } else if Self.hasPrefix(bytes, "https://") {
            isHTTPS = true
            rest = bytes[8...]
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
        let authority = rest[rest.startIndex..<authorityEnd]
        var targetBytes = rest[authorityEnd...]
        if targetBytes.contains(UInt8(ascii: "#")) { return nil }
        // Printable ASCII only in the target: it goes on the request line as it is.
        guard targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        if targetBytes.isEmpty { targetBytes = [UInt8(ascii: "/")][...] }
        if targetBytes.first == UInt8(ascii: "?") { targetBytes = [UInt8(ascii: "/")] + targetBytes }
        guard !authority.isEmpty, !authority.contains(UInt8(ascii: "@")) else { return nil }
        var hostPart = authority
        var portPart: ArraySlice<UInt8>?
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return nil }
                portPart = after.dropFirst()
            }
            guard !hostPart.isEmpty, hostPart.allSatisfy({ Self.isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
            else { return nil }
        } else {
            if let colon = authority.lastIndex(of: UInt8(ascii: ":")) {
                hostPart = authority[authority.startIndex..<colon]
                portPart = authority[authority.index(after: colon)...]
            }
            guard !hostPart.isEmpty, hostPart.count <= 253, hostPart.allSatisfy(Self.isHostByte) else { return nil }
        }
        var port = isHTTPS ? 443 : 80
        if let portPart {
            guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            port = portPart.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            guard (1...65535).contains(port) else { return nil }
        }
        host = String(decoding: hostPart, as: UTF8.self)
        self.port = port
        target = String(decoding: targetBytes, as: UTF8.self)
    }

    /// The `Host` header: the host as the URL wrote it, with the port when it is not the default.
    public var hostHeader: String {
        let shown = host.contains(":") ? "[" + host + "]" : host
        return port == (isHTTPS ? 443 : 80) ? shown : shown + ":" + String(port)
    }

    private static func hasPrefix(_ bytes: [UInt8], _ prefix: String) -> Bool {
        let prefix = Array(prefix.utf8)
        guard bytes.count >= prefix.count else { return false }
        for (index, byte) in prefix.enumerated() where bytes[index] | 0x20 != byte | 0x20 && bytes[index] != byte { return false }
        return true
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66)
    }

    /// Letters, digits, '-', '.', '_' (seen in container host names).
    static func isHostByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
    }
}
