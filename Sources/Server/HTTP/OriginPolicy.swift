import Registry

/// Which web pages may change the registry, and read its answers, from a browser.
///
/// Bodies are read as JSON whatever their Content-Type, so a page on any site could `POST`
/// a `text/plain` body (a "simple" request, sent without a CORS preflight) and deregister
/// instances from a visitor's browser. Browsers say where such a request comes from:
/// `Origin` on every cross-site POST, and `Sec-Fetch-Site`. A write is refused (403) when
/// either names another site than the registry's own origin and the origin is not listed in
/// `--allowed-origins`.
///
/// The registry's own origin is the `Host` the request came to only when that host is an IP
/// address or `localhost`: a host *name* proves nothing, because DNS rebinding lets a page on
/// `evil.example` re-resolve its own name to the registry's address, and then `Origin` and
/// `Host` agree while the page is the attacker's. A page served under a name (a dashboard
/// behind an ingress) is allowed by listing its origin. Requests without them, as curl, scripts and service clients send
/// them, are not affected. Listed origins also get CORS answers (`Access-Control-Allow-*`),
/// so that their pages can read the registry and send it JSON.
struct OriginPolicy: Equatable {
    /// Normalized origins (`scheme://host[:port]`, lower case, default ports dropped), and
    /// `null` when listed.
    let allowed: Set<String>

    init(allowed origins: [String] = []) {
        allowed = Set(origins.compactMap { Self.normalized($0) })
    }

    enum Verdict: Equatable {
        /// Not from a browser page of another site: proceed as usual.
        case proceed
        /// From a listed origin: proceed, and answer with its CORS headers.
        case allowed(origin: String)
        case refused(String)
    }

    /// Judges a request: `origin`, `host` and `fetchSite` are its `Origin`, `Host` and
    /// `Sec-Fetch-Site` headers; `isWrite` whether it can change anything.
    func judge(isWrite: Bool, origin: String?, host: String?, fetchSite: String?, secure: Bool = false) -> Verdict {
        if let origin {
            if let normalized = Self.normalized(origin), allowed.contains(normalized) { return .allowed(origin: origin) }
            guard isWrite else { return .proceed }
            if let host, Self.isSameOrigin(origin, host: host, secure: secure) { return .proceed }
            return .refused("a write from the web page at \(Violation.quoted(origin)) was refused: it is neither this "
                + "registry's own origin nor listed in --allowed-origins")
        }
        if isWrite, fetchSite?.lowercased() == "cross-site" {
            return .refused("a cross-site write from a web page was refused (Sec-Fetch-Site: cross-site); list the page's "
                + "origin in --allowed-origins to allow it")
        }
        return .proceed
    }

    /// `scheme://host[:port]` in lower case without a default port, `null`, or nil when the
    /// text is not an origin.
    static func normalized(_ text: String) -> String? {
        let lowered = text.lowercased()
        if lowered == "null" { return "null" }
        for (scheme, port) in [("http://", ":80"), ("https://", ":443")] where lowered.hasPrefix(scheme) {
            var authority = String(lowered.dropFirst(scheme.count))
            guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@"), !authority.contains("?") else { return nil }
            if authority.hasSuffix(port) { authority.removeLast(port.count) }
            return scheme + authority
        }
        return nil
    }

    /// Whether `origin` is the registry as this request reached it: same scheme (`https` on
    /// the TLS listener, `http` on a plain one), host and port, the host being an IP address
    /// or `localhost`, which no DNS answer can rebind. (The dashboard's own writes.)
    static func isSameOrigin(_ origin: String, host: String, secure: Bool = false) -> Bool {
        let scheme = secure ? "https://" : "http://"
        guard let normalized = normalized(origin), normalized.hasPrefix(scheme) else { return false }
        var authority = host.lowercased()
        let defaultPort = secure ? ":443" : ":80"
        if authority.hasSuffix(defaultPort) { authority.removeLast(defaultPort.count) }
        return normalized == scheme + authority && isUnrebindable(authority)
    }

    /// Whether the origin's port, if it names one, is from 1 to 65535.
    static func hasValidPort(_ origin: String) -> Bool {
        guard let normalized = normalized(origin) else { return false }
        guard normalized != "null" else { return true }
        let authority = normalized.drop { $0 != "/" }.drop { $0 == "/" }
        let afterBracket = authority.lastIndex(of: "]").map { authority[authority.index(after: $0)...] } ?? authority[...]
        guard let colon = afterBracket.lastIndex(of: ":") else { return true }
        let digits = afterBracket[afterBracket.index(after: colon)...]
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(digits) else { return false }
        return (1...65535).contains(port)
    }

    /// `localhost`, an IPv4 address or a bracketed IPv6 address, with or without a port.
    static func isUnrebindable(_ authority: String) -> Bool {
        var host = Substring(authority)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let inside = host[host.index(after: host.startIndex)..<close]
            return !inside.isEmpty && inside.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        }
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host == "localhost" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
    }
}
