/// Where a registry is: `http://HOST:PORT` (or just `HOST:PORT`; the port defaults to 5001),
/// or `https://HOST:PORT` for its TLS port (default 5443).
public struct RegistryURL: Equatable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: UInt16
    /// `https://`: the connection speaks TLS (see `RegistryConnection.tls`).
    public let secure: Bool

    public static let defaultPort: UInt16 = 5001
    public static let defaultSecurePort: UInt16 = 5443

    public struct Invalid: Error, Equatable {
        public let message: String
    }

    public init(host: String, port: UInt16, secure: Bool = false) {
        self.host = host
        self.port = port
        self.secure = secure
    }

    public init(parsing text: String) throws(Invalid) {
        var rest = Substring(text)
        var secure = false
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst("http://".count)
        } else if rest.hasPrefix("https://") {
            rest = rest.dropFirst("https://".count)
            secure = true
        } else if rest.contains("://") {
            throw Invalid(message: "'\(text)' is not an http:// or https:// URL")
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/") else {
            throw Invalid(message: "'\(text)' has a path; give only http://HOST:PORT or https://HOST:PORT")
        }
        var host = rest
        var port = secure ? Self.defaultSecurePort : Self.defaultPort
        if rest.hasPrefix("[") {
            // An IPv6 literal: [::1]:5001
            guard let close = rest.firstIndex(of: "]") else { throw Invalid(message: "'\(text)': unclosed '[' in the host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let parsed = UInt16(after.dropFirst()), parsed > 0 else {
                    throw Invalid(message: "'\(text)': the port must be a number from 1 to 65535")
                }
                port = parsed
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let parsed = UInt16(rest[rest.index(after: colon)...]), parsed > 0 else {
                throw Invalid(message: "'\(text)': the port must be a number from 1 to 65535")
            }
            port = parsed
        }
        guard !host.isEmpty else { throw Invalid(message: "'\(text)' has no host") }
        self.init(host: String(host), port: port, secure: secure)
    }

    /// A comma-separated list (the replicas of a cluster), in order, without repeats.
    public static func list(parsing text: String) throws(Invalid) -> [RegistryURL] {
        var urls: [RegistryURL] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = part.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()
            let url = try RegistryURL(parsing: String(trimmed))
            if !urls.contains(url) { urls.append(url) }
        }
        guard !urls.isEmpty else { throw Invalid(message: "no registry URL given") }
        return urls
    }

    public var description: String {
        let scheme = secure ? "https" : "http"
        return host.contains(":") ? "\(scheme)://[\(host)]:\(port)" : "\(scheme)://\(host):\(port)"
    }
}
