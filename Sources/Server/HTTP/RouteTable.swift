import Access
import CLibevent
import Registry

/// One route: a path template, the methods it serves, and its handler. Each route is
/// declared once, in its front end's list (`NativeAPI.routes`); dispatch, `405` with
/// `Allow`, the 404 text, the metrics labels and the OpenAPI test all read the table.
struct Route {
    /// The API a route belongs to. The compatible APIs and the dashboard are front ends of
    /// their own.
    enum FrontEnd: String {
        case native
        /// Prometheus HTTP service discovery (`Frontends/Prometheus/`).
        case prometheus
        /// Consul's HTTP API under `/v1/` (`Frontends/Consul/`).
        case consul
        /// Eureka's REST API under `/eureka/` (`Frontends/Eureka/`).
        case eureka
        /// The web dashboard, `/ui` (`Frontends/Dashboard/`), and `/`'s redirect to it.
        case dashboard

        /// The registry's own routes, which `openapi.yaml` describes and the 404's hint lists;
        /// the compatible APIs are their originals' to describe (the README lists them).
        var isOwn: Bool { self == .native || self == .prometheus }
    }

    /// What a caller must be allowed to do (`--acl-file`). The front end checks that the
    /// caller may read (or write) some service before the handler runs; the handler checks
    /// the service the request names, and filters listings.
    enum Permission {
        /// Probes: `/health`, `/ready`. Always open.
        case none
        case read
        case write
        /// `/metrics`, `/cluster`, the replicas' own routes.
        case `operator`
    }

    /// `/register`, or `/discover/{service}`: at most one parameter, at the end, which takes
    /// the rest of the path (still percent-encoded).
    let template: String
    /// Serves what no other route under its prefix does (Consul's answer for an unknown
    /// `/v1/…` path): matched after every exact and prefix route.
    let isFallback: Bool
    /// How this front end words an answer made outside its handler (a 405, a denial, a
    /// failed commit, a refused long-poll), from the native form; nil: as it is.
    let restyle: ((Response) -> Response)?
    let methods: [HTTPMethod]
    let frontEnd: FrontEnd
    let permission: Permission
    /// Whether its requests count against the request rates (`Quotas`): not a replica's
    /// relay of heartbeats, counted already where they arrived.
    let rateLimited: Bool
    let handler: (RouteRequest) -> Handling
    /// The `Allow` header of this route's 405s, made once: the transport asks for it with
    /// every request head.
    let allow: String

    init(template: String, methods: [HTTPMethod], frontEnd: FrontEnd, permission: Permission, rateLimited: Bool = true,
         isFallback: Bool = false, restyle: ((Response) -> Response)? = nil, handler: @escaping (RouteRequest) -> Handling) {
        self.rateLimited = rateLimited && permission != .none
        self.isFallback = isFallback
        self.restyle = restyle
        self.template = template
        self.methods = methods
        self.frontEnd = frontEnd
        self.permission = permission
        self.handler = handler
        allow = methods.map(\.name).joined(separator: ", ")
    }
}

/// A request as a handler sees it. The buffers point into evhttp's request and are valid
/// only during the handler's call.
struct RouteRequest {
    let method: HTTPMethod
    /// The raw path, percent-encoding intact.
    let path: UnsafeBufferPointer<UInt8>
    /// What the template's parameter matched (empty for a template without one).
    let parameter: UnsafeBufferPointer<UInt8>
    let query: UnsafeBufferPointer<UInt8>?
    let body: UnsafeBufferPointer<UInt8>
    let now: Instant
    let wallClock: Int64
    /// Who sent it (`.anonymous(.everything)` without an ACL file).
    var caller: Caller = .anonymous(.everything)
    /// evhttp's request, for the few handlers that read more of it (nil in tests without a
    /// listener); valid only during the handler's call.
    var raw: UnsafeMutablePointer<evhttp_request>?

    /// The client's address as the listener saw it (a Consul registration without `Address`).
    func peerHost() -> String? { raw.flatMap { Peer.of($0)?.host } }

    /// A request header's value, the first if it repeats (Eureka's `Accept`).
    func header(_ name: String) -> String? {
        guard let raw else { return nil }
        return evhttp_find_header(evhttp_request_get_input_headers(raw), name).map { String(cString: $0) }
    }
}

/// The routes of every front end, matched by path.
struct RouteTable {
    let routes: [Route]
    /// Metrics labels by route number; one more, `other`, for requests no route serves.
    let labels: [String]
    private var exact: [String: Int] = [:]
    private var prefixes: [(prefix: [UInt8], route: Int)] = []
    private var fallbacks: [(prefix: [UInt8], route: Int)] = []
    /// The methods some route serves, for the `Allow` of a path no route serves.
    let allMethods: String
    let notFoundHint: String

    /// The number `match` gives a path no route serves.
    var otherRoute: Int { routes.count }

    init(_ routes: [Route]) {
        self.routes = routes
        labels = routes.map(\.template) + ["other"]
        for (number, route) in routes.enumerated() {
            if let brace = route.template.firstIndex(of: "{") {
                if route.isFallback {
                    fallbacks.append((Array(route.template[..<brace].utf8), number))
                } else {
                    prefixes.append((Array(route.template[..<brace].utf8), number))
                }
            } else {
                precondition(exact[route.template] == nil, "route \(route.template) declared twice")
                exact[route.template] = number
            }
        }
        let used = HTTPMethod.allCases.filter { method in routes.contains { $0.methods.contains(method) } }
        allMethods = used.map(\.name).joined(separator: ", ")
        // "POST /register, /heartbeat and GET /discover/{service}, /services": by method,
        // in declaration order, HEAD left implied by GET.
        var groups: [(method: HTTPMethod, templates: [String])] = []
        for route in routes where route.frontEnd.isOwn {
            guard let method = route.methods.first(where: { $0 != .head }) else { continue }
            if let position = groups.firstIndex(where: { $0.method == method }) {
                groups[position].templates.append(route.template)
            } else {
                groups.append((method, [route.template]))
            }
        }
        notFoundHint = "the API is " + groups.map { "\($0.method.name) " + $0.templates.joined(separator: ", ") }
            .joined(separator: " and ")
    }

    /// The route serving `path`, and what its parameter matched; `otherRoute` when none does.
    func match(_ path: UnsafeBufferPointer<UInt8>) -> (route: Int, parameter: UnsafeBufferPointer<UInt8>) {
        // Templates with a parameter first: the hot reads (`/discover/…`) cost a prefix compare.
        for (prefix, number) in prefixes where path.starts(with: prefix) {
            return (number, UnsafeBufferPointer(rebasing: path[prefix.count...]))
        }
        // A String of at most 15 bytes is stored inline: no allocation for the fixed paths.
        if let number = exact[String(decoding: path, as: UTF8.self)] {
            return (number, UnsafeBufferPointer(start: nil, count: 0))
        }
        for (prefix, number) in fallbacks where path.starts(with: prefix) {
            return (number, UnsafeBufferPointer(rebasing: path[prefix.count...]))
        }
        return (otherRoute, UnsafeBufferPointer(start: nil, count: 0))
    }

    /// The methods a path serves, for an `Allow` header.
    func allowedMethods(_ path: UnsafeBufferPointer<UInt8>) -> String {
        let number = match(path).route
        return number == otherRoute ? allMethods : routes[number].allow
    }

    /// Routes a request and calls its handler: 404 for a path no route serves, 405 with
    /// `Allow` for a method its route does not. Returns the route's number with the outcome.
    func dispatch(method: HTTPMethod, path: UnsafeBufferPointer<UInt8>, query: UnsafeBufferPointer<UInt8>?,
                  body: UnsafeBufferPointer<UInt8>, now: Instant, wallClock: Int64,
                  caller: (Route) -> Admission = { _ in .admitted(.anonymous(.everything)) },
                  raw: UnsafeMutablePointer<evhttp_request>? = nil)
        -> (route: Int, handling: Handling) {
        let (number, parameter) = match(path)
        guard number != otherRoute else {
            return (number, .respond(.error(404, "no such endpoint: \(method.name) \(Self.shown(path)); \(notFoundHint)")))
        }
        let route = routes[number]
        guard route.methods.contains(method) else {
            return (number, .respond(styled(.error(405, "method \(method.name) is not allowed on \(Self.shown(path)); use \(route.allow)",
                                                   allow: route.allow), route: number)))
        }
        let who: Caller
        switch caller(route) {
        case .admitted(let found): who = found
        case .denied(let denial): return (number, .respond(styled(denial, route: number)))
        }
        return (number, route.handler(RouteRequest(method: method, path: path, parameter: parameter, query: query, body: body,
                                                   now: now, wallClock: wallClock, caller: who, raw: raw)))
    }

    /// An answer made for route `number` outside its handler, in its front end's words.
    func styled(_ response: Response, route number: Int) -> Response {
        guard number < routes.count, let restyle = routes[number].restyle else { return response }
        return restyle(response)
    }

    /// Convenience for tests and tools: the same with Swift strings; a query follows `?`.
    func dispatch(method: HTTPMethod, target: String, body: String = "", now: Instant, wallClock: Int64 = 0) -> Handling {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var path = String(parts[0])
        var query = parts.count > 1 ? String(parts[1]) : ""
        var body = body
        return path.withUTF8 { pathBytes in
            query.withUTF8 { queryBytes in
                body.withUTF8 { bodyBytes in
                    dispatch(method: method, path: pathBytes, query: parts.count > 1 ? queryBytes : nil, body: bodyBytes,
                             now: now, wallClock: wallClock).handling
                }
            }
        }
    }

    /// Every (method, template) the registry's own API serves, for the OpenAPI test (Consul's
    /// subset is Consul's to describe; the README lists it).
    var operations: [(method: String, path: String)] {
        routes.filter(\.frontEnd.isOwn).flatMap { route in route.methods.map { ($0.name, route.template) } }
    }

    /// A path as an error message quotes it: at most 100 bytes (a client may send 8 KB), and
    /// never a broken UTF-8 sequence.
    static func shown(_ path: UnsafeBufferPointer<UInt8>) -> String {
        let limit = 100
        guard path.count > limit else { return String(decoding: path, as: UTF8.self) }
        var end = limit
        // Back off to a character boundary: continuation bytes are 10xxxxxx.
        while end > 0 && path[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: UnsafeBufferPointer(rebasing: path[..<end]), as: UTF8.self) + "… (\(path.count) bytes)"
    }
}

extension RouteTable {
    /// Every front end's routes, in the one table a listener serves: the native API's,
    /// Prometheus service discovery's, Consul's, Eureka's.
    static func registry(api: NativeAPI, service: RegistryService, consul: ConsulAPI, eureka: EurekaAPI,
                         dashboard: Dashboard = Dashboard()) -> RouteTable {
        let table = RouteTable(api.routes() + PrometheusTargets(service: service).routes() + consul.routes() + eureka.routes()
            + dashboard.routes())
        let hint = table.notFoundHint
        dashboard.notFound = { method in .error(404, "no such endpoint: \(method.name) /; \(hint)") }
        return table
    }
}
