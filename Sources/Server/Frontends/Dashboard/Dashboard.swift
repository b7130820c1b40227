import Access
import HTTPParsing

/// The web dashboard: `GET /ui`, a page built into the binary (HTML, CSS and one script, no
/// library, nothing fetched from anywhere else), which reads the native API from the browser
/// (`/access`, `/watch`, `/watch/{service}`, `/discover`, `/cluster`) and writes through it
/// (`/status`, `/deregister`) with the token the operator typed.
///
/// The page holds no data: it is open to every caller, and what it shows is what the token
/// may read. Its assets are named by their content's digest (`/ui/app.<digest>.js`) and
/// cached for a year; the page itself is revalidated (`ETag`, `304`). Every answer carries a
/// strict Content-Security-Policy: scripts and styles from this origin only, no inline
/// script, no frames, no form posts, connections to this origin only.
final class Dashboard {
    struct Asset {
        let body: [UInt8]
        let contentType: StaticString
        let etag: String
        /// The page (revalidated on every load) or a digest-named asset (kept a year).
        let immutable: Bool

        init(_ text: String, contentType: StaticString, immutable: Bool) {
            body = Array(text.utf8)
            self.contentType = contentType
            etag = "\"" + Dashboard.digest(body) + "\""
            self.immutable = immutable
        }
    }

    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    let page: Asset
    /// By name under `/ui/`: `app.<digest>.js`, `app.<digest>.css`.
    let assets: [String: Asset]
    /// What `/` answers a client that does not ask for HTML: the route table's 404, as before
    /// there was a dashboard (set once the table exists).
    var notFound: (HTTPMethod) -> Response = { _ in .error(404, "no such endpoint") }

    init() {
        let script = Asset(DashboardScript.text, contentType: "text/javascript; charset=utf-8", immutable: true)
        let style = Asset(DashboardStyle.text, contentType: "text/css; charset=utf-8", immutable: true)
        let scriptName = "app.\(Self.digest(script.body)).js"
        let styleName = "app.\(Self.digest(style.body)).css"
        assets = [scriptName: script, styleName: style]
        let html = DashboardPage.text
            .replacing("{{script}}", with: "/ui/" + scriptName)
            .replacing("{{style}}", with: "/ui/" + styleName)
        page = Asset(html, contentType: "text/html; charset=utf-8", immutable: false)
    }

    /// The first 16 hex digits of the SHA-256 of `bytes`.
    static func digest(_ bytes: [UInt8]) -> String {
        String(SHA256.hex(SHA256.digest(bytes)).prefix(16))
    }

    func routes() -> [Route] {
        let reads: [HTTPMethod] = [.get, .head]
        return [
            // Every method, so that what is not a browser's GET is answered as before: 404.
            Route(template: "/", methods: HTTPMethod.allCases, frontEnd: .dashboard, permission: .none) { [self] in root($0) },
            Route(template: "/ui", methods: reads, frontEnd: .dashboard, permission: .none) { [self] in serve(page, $0) },
            Route(template: "/ui/{asset}", methods: reads, frontEnd: .dashboard, permission: .none) { [self] in asset($0) },
        ]
    }

    /// `/`: a browser (its `Accept` names `text/html`) is sent to the page; anything else gets
    /// the 404 it always got, so that curl and scripts see no change.
    private func root(_ request: RouteRequest) -> Handling {
        guard request.method == .get || request.method == .head,
              let accept = request.header("Accept"), accept.lowercased().contains("text/html") else {
            return .respond(notFound(request.method))
        }
        var response = Response(status: 302, body: [])
        response.contentType = "text/html; charset=utf-8"
        response.extraHeaders = [("Location", "/ui"), ("Vary", "Accept"), ("Cache-Control", "no-cache")]
        return .respond(response)
    }

    private func asset(_ request: RouteRequest) -> Handling {
        let name = String(decoding: request.parameter, as: UTF8.self)
        if name.isEmpty { return serve(page, request) }
        guard let asset = assets[name] else {
            var response = Response(status: 404, body: Array("Not found: the dashboard has no file \(Self.printable(name)).\n".utf8))
            response.contentType = "text/plain; charset=utf-8"
            response.extraHeaders = Self.securityHeaders
            return .respond(response)
        }
        return serve(asset, request)
    }

    static let securityHeaders: [(name: String, value: String)] = [
        ("Content-Security-Policy", contentSecurityPolicy), ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
    ]

    private func serve(_ asset: Asset, _ request: RouteRequest) -> Handling {
        var headers = Self.securityHeaders
        headers.append(("ETag", asset.etag))
        headers.append(("Cache-Control", asset.immutable ? "public, max-age=31536000, immutable" : "no-cache"))
        if let tags = request.header("If-None-Match"), Self.matches(tags, asset.etag) {
            var response = Response(status: 304, body: [])
            response.contentType = asset.contentType
            response.extraHeaders = headers
            return .respond(response)
        }
        var response = Response(status: 200, body: asset.body)
        response.contentType = asset.contentType
        response.extraHeaders = headers
        return .respond(response)
    }

    /// `If-None-Match`: `*`, or a list of entity tags (weak ones compare by their value).
    static func matches(_ header: String, _ etag: String) -> Bool {
        header.split(separator: ",").contains { part in
            let tag = part.filter { $0 != " " && $0 != "\t" }
            return tag == "*" || tag == etag || tag == "W/" + etag
        }
    }

    private static func printable(_ text: String) -> String {
        String(text.unicodeScalars.prefix(64).map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}
