/// One etcd member's client URL: `http://HOST:PORT` or `https://HOST:PORT` (the port defaults
/// to 2379; https needs `EtcdClient.tls`, or uses the system's CAs). A host
/// name is resolved by libevent's asynchronous resolver when the connection is made, never
/// by a blocking call on the loop.
public struct EtcdEndpoint: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: UInt16
    public let secure: Bool

    public static let defaultPort: UInt16 = 2379

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(host: String, port: UInt16, secure: Bool = false) {
        self.host = host
        self.port = port
        self.secure = secure
    }

    public init(parsing text: String) throws(Invalid) {
        var rest = Substring(text.trimmingSpaces)
        var secure = false
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst("http://".count)
        } else if rest.hasPrefix("https://") {
            rest = rest.dropFirst("https://".count)
            secure = true
        } else if rest.contains("://") {
            throw Invalid(message: "etcd endpoint '\(text)' is not an http:// or https:// URL")
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/") else {
            throw Invalid(message: "etcd endpoint '\(text)' has a path; give only http://HOST:PORT")
        }
        var host = rest
        var port = Self.defaultPort
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw Invalid(message: "etcd endpoint '\(text)': unclosed '[' in the host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let parsed = UInt16(after.dropFirst()), parsed > 0 else {
                    throw Invalid(message: "etcd endpoint '\(text)': the port must be a number from 1 to 65535")
                }
                port = parsed
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let parsed = UInt16(rest[rest.index(after: colon)...]), parsed > 0 else {
                throw Invalid(message: "etcd endpoint '\(text)': the port must be a number from 1 to 65535")
            }
            port = parsed
        }
        guard !host.isEmpty else { throw Invalid(message: "etcd endpoint '\(text)' has no host") }
        self.init(host: String(host), port: port, secure: secure)
    }

    /// A comma-separated list, as `--etcd` takes it.
    public static func list(parsing text: String) throws(Invalid) -> [EtcdEndpoint] {
        var endpoints: [EtcdEndpoint] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let endpoint = try EtcdEndpoint(parsing: String(part))
            if !endpoints.contains(endpoint) { endpoints.append(endpoint) }
        }
        guard !endpoints.isEmpty else { throw Invalid(message: "no etcd endpoint given") }
        return endpoints
    }

    public var description: String {
        let scheme = secure ? "https" : "http"
        return host.contains(":") ? "\(scheme)://[\(host)]:\(port)" : "\(scheme)://\(host):\(port)"
    }
}

extension String {
    var trimmingSpaces: Substring {
        var view = Substring(self)
        while view.first == " " { view = view.dropFirst() }
        while view.last == " " { view = view.dropLast() }
        return view
    }
}
