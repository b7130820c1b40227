#if canImport(Glibc)
import Glibc
#endif
import Access
import CLibevent
import Registry
import TLS

/// One HTTP listener: an evhttp object bound to one address, its transport, and the
/// dispatch of its requests through the route table.
///
/// Every callback is a thin trampoline: it reads the clock once, asks the table, and answers
/// or hands the request to its one owner: `WatchHub` for a held read, the service's commit
/// waiters for a write that must be on disk first. Because every mutation happens inside
/// callbacks of the one loop, the registry needs no locks.
final class HTTPFrontEnd {
    struct StartError: Error {
        let message: String
    }

    /// Where one front end listens, and whether it speaks TLS.
    struct Listener {
        var host: String
        var port: UInt16
        /// The certificates of a TLS listener (`--tls-port`); nil for plain HTTP.
        var tls: TLSServerContext?
        /// How the flags name this listener's port, for error messages.
        var portFlag: String
    }

    /// NUL-terminated, as every StaticString literal is.
    private static let defaultContentType: StaticString = "application/json"

    let port: UInt16
    let isTLS: Bool
    private var http: OpaquePointer?
    private var listener: OpaquePointer?
    private let table: RouteTable
    private let service: RegistryService
    private let hub: WatchHub
    private let transport: Transport
    private let originPolicy: OriginPolicy
    private let metrics: Metrics
    private let logger: Logger
    /// Nil unless `--access-log` (or `--log-level debug`) is on.
    private let accessLog: AccessLog?
    /// The ACL file's rules (`--acl-file`); open without one.
    let access: AccessControl
    /// Request rates (ACL entries' `requests_per_second`, `--max-request-rate-per-client`).
    let quotas: Quotas
    /// Set when the listener closes: held reads are answered at once from then on.
    private(set) var stopping = false
    private var refusalLog = LogThrottle()

    init(config: Config, listener place: Listener, loop: EventLoop, table: RouteTable, service: RegistryService, hub: WatchHub,
         metrics: Metrics, logger: Logger, accessLog: AccessLog?, access: AccessControl, quotas: Quotas) throws(StartError) {
        isTLS = place.tls != nil
        self.quotas = quotas
        self.accessLog = accessLog
        self.access = access
        self.table = table
        self.service = service
        self.hub = hub
        self.metrics = metrics
        self.logger = logger
        self.originPolicy = OriginPolicy(allowed: config.allowedOrigins)

        guard let http = evhttp_new(loop.base) else { throw StartError(message: "could not create the evhttp server") }
        self.http = http
        // Every limit explicitly: libevent's defaults are unlimited. The transport enforces the
        // header limit (with 414 and 431) before evhttp sees a byte; evhttp's own is a backstop.
        evhttp_set_max_body_size(http, Int(config.maxBodyBytes))
        evhttp_set_max_headers_size(http, Int(config.maxHeaderBytes) + 64)
        var idle = timeval(tv_sec: config.idleTimeout.timeval.seconds, tv_usec: config.idleTimeout.timeval.microseconds)
        evhttp_set_timeout_tv(http, &idle)
        // libevent keeps the pointer, not a copy: it must point at static storage.
        Self.defaultContentType.withUTF8Buffer { text in
            text.withMemoryRebound(to: CChar.self) { evhttp_set_default_content_type(http, $0.baseAddress) }
        }
        // Accept every method evhttp parses, so the table answers 405 with Allow (evhttp
        // would answer 501 for a method outside this set).
        let methods = EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_HEAD.rawValue | EVHTTP_REQ_POST.rawValue
            | EVHTTP_REQ_PUT.rawValue | EVHTTP_REQ_DELETE.rawValue | EVHTTP_REQ_OPTIONS.rawValue
            | EVHTTP_REQ_PATCH.rawValue | EVHTTP_REQ_TRACE.rawValue | EVHTTP_REQ_CONNECT.rawValue
        evhttp_set_allowed_methods(http, UInt16(methods))
        // Read and discard an oversized body before answering 413, so that the client,
        // still sending, reads the answer instead of a connection reset.
        evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE)

        OutputMemory.budget = config.maxOutputBytes
        let maxConnections = config.maxConnections ?? Limits.defaultMaxConnections
        transport = Transport(mode: isTLS ? .tls : .filtered, loop: loop, limits: Transport.Limits(
            maxConnections: maxConnections, maxHeadBytes: config.maxHeaderBytes,
            headerTimeout: config.headerTimeout, bodyTimeout: config.bodyTimeout, idleTimeout: config.idleTimeout),
            logger: logger, allowedMethods: { [table] in table.allowedMethods($0) })
        transport.tls = place.tls
        transport.install(on: http)
        if maxConnections > Limits.openFiles {
            logger.warn("max_connections_above_descriptor_limit", [
                "max_connections": maxConnections, "descriptor_limit": Limits.openFiles,
                "note": "accepts will fail (and pause) before the limit is reached; raise ulimit -n",
            ])
        }

        // evhttp resolves the host itself and leaves errno meaningless when that fails.
        let hostFlag = isTLS ? "--tls-host" : "--host"
        if let problem = Self.resolutionProblem(place.host) {
            evhttp_free(http)
            self.http = nil
            throw StartError(message: "cannot listen on \(place.host):\(place.port): the host name does not resolve (\(problem)); "
                + "give an address this machine has, such as 0.0.0.0 or 127.0.0.1, with \(hostFlag)")
        }
        guard let bound = evhttp_bind_socket_with_handle(http, place.host, place.port) else {
            let code = errno
            evhttp_free(http)
            self.http = nil
            let reason = String(cString: strerror(code))
            guard code == EADDRINUSE else {
                throw StartError(message: "cannot listen on \(place.host):\(place.port): \(reason); choose another \(place.portFlag) or \(hostFlag)")
            }
            throw StartError(message: "cannot listen on \(place.host):\(place.port): \(reason): "
                + PortHolder.describe(host: place.host, port: place.port))
        }
        listener = bound
        transport.watch(bound)
        let listeningSocket = evhttp_bound_socket_get_fd(bound)
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux. Without it, a
        // reply larger than one write (a big discover) waits on Nagle's algorithm and the
        // client's delayed ACK: 40 ms per response.
        var noDelay: Int32 = 1
        setsockopt(listeningSocket, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        port = SocketPort.local(of: listeningSocket) ?? place.port

        evhttp_set_gencb(http, { request, context in
            guard let request, let context else { return }
            Unmanaged<HTTPFrontEnd>.fromOpaque(context).takeUnretainedValue().handle(PendingRequest(request))
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    var transportStats: Transport.Stats { transport.stats }

    /// New TLS connections use `context` from now on (a reload's certificates).
    func useCertificates(_ context: TLSServerContext) {
        transport.tls = context
    }

    /// Stops accepting and answers every held read with the current state.
    func stopAccepting() {
        guard !stopping else { return }
        stopping = true
        if let listener, let http {
            transport.forgetListener()
            evhttp_del_accept_socket(http, listener)
            self.listener = nil
        }
        hub.finishAll(now: Clock.monotonicNow(), wallClock: Clock.wallNow())
    }

    /// Frees evhttp and its connections; before the loop is closed.
    func close() {
        transport.forgetListener()
        if let http { evhttp_free(http) }
        http = nil
    }

    // MARK: Requests

    /// `attempt` counts the times a cluster write was judged again after losing to another
    /// change of its instance (`CommitResult.retry`).
    static let maxWriteAttempts = 4

    /// On a replica's reads, as Consul's: milliseconds since etcd last answered this replica,
    /// and whether it knows a leader (without one, nothing expires and the answer may be stale).

    private func handle(_ request: consuming PendingRequest, attempt: Int = 0) {
        let now = Clock.monotonicNow()
        let wallClock = Clock.wallNow()
        let entry = accessLog == nil ? nil : request.inspect { AccessLog.entry($0, start: now) }
        guard let method = request.method else {
            answer(request, .error(501, "method not implemented"), route: nil, method: .get, entry: entry, start: now, timed: false)
            return
        }
        // Writes from other sites' pages are refused; listed origins get CORS answers. Reads
        // need no check unless origins are listed, which keeps them free of header lookups.
        var allowedOrigin: String?
        if method.isWrite || !originPolicy.allowed.isEmpty {
            let origin = request.header("Origin")
            switch originPolicy.judge(isWrite: method.isWrite, origin: origin, host: request.header("Host"),
                                      fetchSite: method.isWrite ? request.header("Sec-Fetch-Site") : nil, secure: isTLS) {
            case .proceed:
                break
            case .refused(let message):
                let route = request.withTarget { path, _ in table.match(path).route }
                answer(request, table.styled(.error(403, message), route: route), route: route, method: method, entry: entry, start: now, timed: false)
                if let suppressed = refusalLog.admit(now: now) {
                    // An Origin is the client's to choose: quoted at most 100 bytes long.
                    logger.info("cross_origin_write_refused", ["origin": origin.map { Self.clipped($0) } ?? "-", "method": method.name,
                                                               "refusals_not_logged": suppressed])
                }
                return
            case .allowed(let origin):
                allowedOrigin = origin
                if method == .options, request.header("Access-Control-Request-Method") != nil {
                    let allow = request.withTarget { path, _ in table.allowedMethods(path) }
                    var preflight = Response(status: 204, body: [])
                    preflight.extraHeaders = [
                        ("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                        ("Access-Control-Allow-Methods", allow),
                        ("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Registry-Token"),
                        ("Access-Control-Max-Age", "600"),
                    ]
                    answer(request, preflight, route: nil, method: method, entry: entry, start: now, timed: false)
                    return
                }
            }
        }
        // A replica that has not yet read the registry from etcd would answer from an empty
        // mirror: everything but the probes and /cluster waits (clients move to another).
        if let cluster = service.cluster, !cluster.store.isLoaded {
            let route = request.withTarget { path, _ in table.match(path).route }
            if route < table.routes.count, table.routes[route].permission != .none, table.routes[route].template != "/cluster" {
                var loading = Response.error(503, "this replica has not yet read the registry from etcd (\(cluster.client.preferredEndpoint)); "
                    + "retry in a moment, or ask another replica")
                loading.retryAfter = 1
                answer(request, table.styled(loading, route: route), route: route, method: method, entry: entry, start: now, timed: false)
                return
            }
        }
        // Headers are looked up only when an ACL file is in force.
        let caller: Caller = access.isOpen ? .anonymous(.everything)
            : request.withTokenHeaders { authorization, registryToken in
                let connection = request.inspect { Transport.connection(of: $0) }
                // Consul's clients may send the token as `?token=` instead of a header.
                let queryToken = authorization == nil && registryToken == nil
                    ? request.withTarget { path, query in ConsulAPI.queryToken(path: path, query: query) } : nil
                return (queryToken ?? []).withUnsafeBufferPointer { fromQuery in
                    access.caller(authorization: authorization, registryToken: registryToken ?? (queryToken == nil ? nil : fromQuery),
                                  certificateNames: isTLS ? { connection?.certificateNames ?? [] } : nil,
                                  memo: connection?.tokenMemo)
                }
            }
        var route = table.otherRoute
        let handling: Handling = request.withBody { body in
            request.withTarget { path, query -> Handling in
                let dispatched = table.dispatch(method: method, path: path, query: query, body: body, now: now, wallClock: wallClock,
                                                caller: { route in
                    let admission = AccessControl.admit(caller, to: route.permission)
                    guard route.rateLimited, quotas.boundsRates, case .admitted(let who) = admission,
                          let refusal = quotas.admitRate(who, client: { [raw = request.inspect { $0 }] in Peer.of(raw)?.host }, now: now)
                    else { return admission }
                    return .denied(refusal)
                }, raw: request.inspect { $0 })
                route = dispatched.route
                return dispatched.handling
            }
        }
        switch handling {
        case .respond(var response):
            if let allowedOrigin { Self.addCORS(&response, origin: allowedOrigin) }
            if let cluster = service.cluster, !method.isWrite { response.replicaHeaders = cluster.readHeaders(now: now) }
            answer(request, response, route: route, method: method, entry: entry, start: now, timed: true)
        case .respondWhenCommitted(var response):
            if let allowedOrigin { Self.addCORS(&response, origin: allowedOrigin) }
            guard service.hasUncommittedChanges else {
                answer(request, response, route: route, method: method, entry: entry, start: now, timed: true)
                return
            }
            // A change: acknowledged once the store has it (written, or fsynced), or answered 503.
            let raw = request.park()
            service.whenCommitted { [self] result in
                var reply = response
                switch result {
                case .committed: break
                case .failed(let message): reply = table.styled(.error(503, message), route: route)
                case .retry:
                    if attempt < Self.maxWriteAttempts {
                        handle(PendingRequest(raw), attempt: attempt + 1)
                        return
                    }
                    reply = table.styled(.error(503, "the instance kept changing through other replicas while this write was judged "
                        + "\(Self.maxWriteAttempts + 1) times; nothing was changed by it, retry"), route: route)
                }
                PendingRequest.send(raw, reply)
                account(reply, route: route, method: method, entry: entry, start: now, timed: true)
            }
        case .park(let target, let wait):
            if let allowedOrigin { request.addCORSHeaders(origin: allowedOrigin) }
            let admission = request.inspect { hub.admission(for: $0) }
            if let refusal = admission.refusal {
                answer(request, table.styled(refusal, route: route), route: route, method: method, entry: entry, start: now, timed: false)
            } else if stopping {
                answer(request, hub.currentAnswer(target, now: now, wallClock: wallClock), route: route, method: method, entry: entry,
                       start: now, timed: false)
            } else {
                hub.park(request.park(), target: target, wait: wait, client: admission.client, route: route, method: method,
                         access: entry)
            }
        case .stream(let target):
            if let allowedOrigin { request.addCORSHeaders(origin: allowedOrigin) }
            let admission = request.inspect { hub.admission(for: $0) }
            if let refusal = admission.refusal {
                answer(request, refusal, route: route, method: method, entry: entry, start: now, timed: false)
            } else {
                // Counted now: its 200 and headers go out at once. Logged when it ends.
                metrics.countRequest(route: route, method: method, status: 200, seconds: nil)
                hub.openStream(request.park(), target: target, now: now, wallClock: wallClock, client: admission.client, access: entry)
            }
        }
    }

    /// Replies, and counts and logs the answer.
    private func answer(_ request: consuming PendingRequest, _ response: Response, route: Int?, method: HTTPMethod,
                        entry: AccessLog.Entry?, start: Instant, timed: Bool) {
        request.reply(response)
        account(response, route: route, method: method, entry: entry, start: start, timed: timed)
    }

    /// `/metrics` counts every answer under its route (`timed` ones in the duration histogram
    /// too: held and refused requests would distort it); the access log lists it. A nil
    /// route is an answer `/metrics` does not count (no method, a CORS preflight).
    private func account(_ response: Response, route: Int?, method: HTTPMethod, entry: AccessLog.Entry?, start: Instant,
                         timed: Bool) {
        guard route != nil || entry != nil else { return }
        let now = Clock.monotonicNow()
        if let route, let denial = response.denial { access.count(denial: denial, route: route) }
        if let route {
            metrics.countRequest(route: route, method: method, status: response.status,
                                 seconds: timed ? Double(now.duration(since: start).wholeNanoseconds) / 1e9 : nil)
        }
        if let entry, let accessLog {
            accessLog.answered(entry, status: response.status, bytes: method == .head ? 0 : response.byteCount, now: now,
                               error: response.message)
        }
    }

    private static func addCORS(_ response: inout Response, origin: String) {
        response.extraHeaders += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                                  ("Access-Control-Expose-Headers", "X-Registry-Index")]
    }

    private static func clipped(_ text: String) -> String {
        text.utf8.count <= 100 ? text : String(decoding: text.utf8.prefix(100), as: UTF8.self) + "…"
    }

    /// Why `host` cannot be bound as a listening address, if it does not resolve.
    private static func resolutionProblem(_ host: String) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &result)
        if let result { freeaddrinfo(result) }
        return status == 0 ? nil : String(cString: gai_strerror(status))
    }
}
