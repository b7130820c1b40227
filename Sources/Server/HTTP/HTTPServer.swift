#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Registry

/// The evhttp server: one event base, one listening socket, one expiry timer and the
/// signal events, all on the thread that calls `run()`.
///
/// Every callback is a thin trampoline: it unwraps `self` from the context pointer, reads
/// the clock once, calls into `RegistryAPI`, and replies before returning. Because every
/// mutation happens inside these callbacks on the one loop, the registry needs no locks.
final class HTTPServer {
    struct StartError: Error {
        let message: String
    }

    /// Index entries one expiry callback may visit: enough to drain 100k due instances in
    /// well under a second, small enough that one batch takes about a millisecond.
    static let expiryBatch = 1_000
    /// How long in-flight replies get to drain after a stop signal before the loop exits.
    static let drainTimeout: Duration = .milliseconds(250)
    /// NUL-terminated, as every StaticString literal is.
    private static let defaultContentType: StaticString = "application/json"

    let port: UInt16
    private let base: OpaquePointer
    private let http: OpaquePointer
    private var listener: OpaquePointer?
    private var expiryTimer: OpaquePointer?
    /// Ends the shutdown grace period.
    private var graceTimer: OpaquePointer?
    private let shutdownGrace: Duration
    private var signalEvents: [OpaquePointer] = []
    private let api: RegistryAPI
    private let hub: WatchHub
    private let transport: Transport
    private let originPolicy: OriginPolicy
    /// Nil when the registry keeps nothing on disk.
    private var durability: Durability?
    private let metrics = Metrics()
    private let logger: Logger
    /// The deadline the expiry timer is armed for (monotonic nanoseconds), if armed.
    private var armedDeadline: Int64?
    /// Set by the first stop signal: `/ready` answers 503 while everything else is served.
    private(set) var draining = false
    /// Set when the listener closes: held requests are being answered and the loop ends.
    private(set) var stopping = false

    init(config: Config, api: RegistryAPI, logger: Logger, persistence: Durability.Setup? = nil) throws(StartError) {
        self.api = api
        self.logger = logger
        self.shutdownGrace = config.shutdownGrace
        self.originPolicy = OriginPolicy(allowed: config.allowedOrigins)

        // One thread owns the base, so libevent's internal locking is pure cost.
        let baseConfig = event_config_new()
        event_config_set_flag(baseConfig, Int32(EVENT_BASE_FLAG_NOLOCK.rawValue))
        // Batch epoll interest changes until the loop next polls, so that a change undone in
        // the same turn (a reply's write interest, added and dropped when it is written at
        // once) costs no system call. libevent warns that this is unsafe when a closed socket's
        // file stays open elsewhere (dup, fork, descriptors passed to another process): epoll
        // would keep watching it. The server does none of these; keep it that way.
        event_config_set_flag(baseConfig, Int32(EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue))
        guard let base = event_base_new_with_config(baseConfig) else {
            event_config_free(baseConfig)
            throw StartError(message: "could not create the libevent event base")
        }
        event_config_free(baseConfig)
        self.base = base

        guard let http = evhttp_new(base) else {
            event_base_free(base)
            throw StartError(message: "could not create the evhttp server")
        }
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
        // Accept every method evhttp parses, so the router answers 405 with Allow (evhttp
        // would answer 501 for a method outside this set).
        let methods = EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_HEAD.rawValue | EVHTTP_REQ_POST.rawValue
            | EVHTTP_REQ_PUT.rawValue | EVHTTP_REQ_DELETE.rawValue | EVHTTP_REQ_OPTIONS.rawValue
            | EVHTTP_REQ_PATCH.rawValue | EVHTTP_REQ_TRACE.rawValue | EVHTTP_REQ_CONNECT.rawValue
        evhttp_set_allowed_methods(http, UInt16(methods))
        // Read and discard an oversized body before answering 413, so that the client,
        // still sending, reads the answer instead of a connection reset.
        evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE)

        let maxConnections = config.maxConnections ?? Limits.defaultMaxConnections
        transport = Transport(base: base, limits: Transport.Limits(
            maxConnections: maxConnections, maxHeadBytes: config.maxHeaderBytes,
            headerTimeout: config.headerTimeout, bodyTimeout: config.bodyTimeout, idleTimeout: config.idleTimeout),
            logger: logger, allowedMethods: RegistryAPI.allowedMethods)
        transport.install(on: http)
        if maxConnections > Limits.openFiles {
            logger.warn("max_connections_above_descriptor_limit", [
                "max_connections": maxConnections, "descriptor_limit": Limits.openFiles,
                "note": "accepts will fail (and pause) before the limit is reached; raise ulimit -n",
            ])
        }

        guard let bound = evhttp_bind_socket_with_handle(http, config.host, config.port) else {
            let reason = String(cString: strerror(errno))
            evhttp_free(http)
            event_base_free(base)
            throw StartError(message: "cannot listen on \(config.host):\(config.port): \(reason); "
                + "is another registry running there? Choose another --port or --host")
        }
        listener = bound
        transport.watch(bound)
        let listeningSocket = evhttp_bound_socket_get_fd(bound)
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux. Without it, a
        // reply larger than one write (a big discover) waits on Nagle's algorithm and the
        // client's delayed ACK: 40 ms per response.
        var noDelay: Int32 = 1
        setsockopt(listeningSocket, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        port = Self.localPort(of: listeningSocket) ?? config.port
        hub = WatchHub(base: base, api: api, logger: logger, idleTimeout: config.idleTimeout,
                       limits: WatchHub.Limits(maxWatchers: config.maxWatchers, maxWatchersPerClient: config.maxWatchersPerClient))

        let context = Unmanaged.passUnretained(self).toOpaque()
        evhttp_set_gencb(http, { request, context in
            guard let request, let context else { return }
            Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().handle(PendingRequest(request))
        }, context)
        expiryTimer = CLibevent_evtimer_new(base, { _, _, context in
            guard let context else { return }
            Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().expiryTimerFired()
        }, context)
        graceTimer = CLibevent_evtimer_new(base, { _, _, context in
            guard let context else { return }
            Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().close()
        }, context)
        for signal in [SIGTERM, SIGINT] {
            guard let event = CLibevent_evsignal_new(base, signal, { signal, _, context in
                guard let context else { return }
                Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().stop(signal: signal)
            }, context) else { continue }
            event_add(event, nil)
            signalEvents.append(event)
        }
        if let persistence {
            durability = Durability(setup: persistence, base: base, api: api, logger: logger, metrics: metrics) { [unowned self] now in
                afterCallback(now: now)
            }
        }
        api.metricsExposition = { [unowned self] in
            metrics.exposition(api: api, gauges: Metrics.Gauges(longPolls: hub.pollCount, streams: hub.streamCount,
                                                                durability: durability?.stats, transport: transport.stats))
        }
    }

    var heldRequests: (polls: Int, streams: Int) { (hub.pollCount, hub.streamCount) }

    deinit {
        if let expiryTimer { event_free(expiryTimer) }
        if let graceTimer { event_free(graceTimer) }
        for event in signalEvents { event_free(event) }
        evhttp_free(http)
        hub.releaseEvents()
        transport.releaseEvents()
        event_base_free(base)
    }

    /// Runs the loop until a stop signal has been handled and in-flight replies drained,
    /// then makes the log durable and closes it.
    /// Returns false when the log's last fsync failed.
    @discardableResult
    func run() -> Bool {
        event_base_dispatch(base)
        let synced = durability?.finish() ?? true
        durability = nil
        return synced
    }

    /// The first stop signal starts the grace period: `/ready` turns 503 at once (so load
    /// balancers and Kubernetes stop sending) while every request is still served; when it
    /// ends, or at a second signal, the registry closes.
    func stop(signal: Int32) {
        let name = signal == SIGTERM ? "SIGTERM" : signal == SIGINT ? "SIGINT" : String(signal)
        guard !draining, shutdownGrace > .zero, let graceTimer else {
            logger.info("stopping", ["signal": name, "grace": draining ? "cut short" : "none"])
            close()
            return
        }
        draining = true
        api.isDraining = true
        logger.info("draining", ["signal": name, "grace": shutdownGrace.secondsText,
                                 "note": "/ready answers 503; requests are served until the grace period ends or another signal comes"])
        logger.flush()
        var interval = timeval(tv_sec: shutdownGrace.timeval.seconds, tv_usec: shutdownGrace.timeval.microseconds)
        CLibevent_evtimer_add(graceTimer, &interval)
    }

    /// Stops accepting, lets what is in flight finish for `drainTimeout`, then ends `run()`.
    private func close() {
        guard !stopping else { return }
        stopping = true
        draining = true
        api.isDraining = true
        if let graceTimer { CLibevent_evtimer_del(graceTimer) }
        logger.info("closing", ["held_requests": hub.pollCount + hub.streamCount])
        logger.flush()
        durability?.prepareToStop()
        if let listener {
            transport.forgetListener()
            evhttp_del_accept_socket(http, listener)
            self.listener = nil
        }
        // Held requests are answered now, with the current state, rather than cut off.
        hub.finishAll(now: Clock.monotonicNow(), wallClock: Clock.wallNow())
        var drain = timeval(tv_sec: 0, tv_usec: Int(Self.drainTimeout.wholeNanoseconds / 1000))
        event_base_loopexit(base, &drain)
    }

    // MARK: Callbacks

    private func handle(_ request: consuming PendingRequest) {
        let now = Clock.monotonicNow()
        let wallClock = Clock.wallNow()
        let journalBefore = api.pendingJournalCount
        guard let method = request.method else {
            request.reply(.error(501, "method not implemented"))
            return
        }
        // Writes from other sites' pages are refused; listed origins get CORS answers. Reads
        // need no check unless origins are listed, which keeps them free of header lookups.
        var allowedOrigin: String?
        if method.isWrite || !originPolicy.allowed.isEmpty {
            let origin = request.header("Origin")
            switch originPolicy.judge(isWrite: method.isWrite, origin: origin, host: request.header("Host"),
                                      fetchSite: method.isWrite ? request.header("Sec-Fetch-Site") : nil) {
            case .proceed:
                break
            case .refused(let message):
                let route = request.withTarget { path, _ in RegistryAPI.routeLabel(path) }
                request.reply(.error(403, message))
                metrics.countRequest(route: route, method: method, status: 403, seconds: nil)
                logger.info("cross_origin_write_refused", ["origin": origin ?? "-", "method": method.name])
                afterCallback(now: now)
                return
            case .allowed(let origin):
                allowedOrigin = origin
                if method == .options, request.header("Access-Control-Request-Method") != nil {
                    let allow = request.withTarget { path, _ in RegistryAPI.allowedMethods(path) }
                    var preflight = Response(status: 204, body: [])
                    preflight.extraHeaders = [
                        ("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                        ("Access-Control-Allow-Methods", "\(allow)"),
                        ("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Registry-Token"),
                        ("Access-Control-Max-Age", "600"),
                    ]
                    request.reply(preflight)
                    afterCallback(now: now)
                    return
                }
            }
        }
        var route = RouteLabel.other
        let handling: Handling = request.withBody { body in
            request.withTarget { path, query -> Handling in
                route = RegistryAPI.routeLabel(path)
                return api.handle(method: method, path: path, route: route, query: query, body: body, now: now,
                                  wallClock: wallClock)
            }
        }
        if logger.enabled(.debug) {
            let path = request.withTarget { path, _ in String(decoding: path, as: UTF8.self) }
            logger.debug("request", ["method": method.name, "path": path, "handling": handling.summary])
        }
        switch handling {
        case .respond(var response):
            if let allowedOrigin {
                response.extraHeaders += [("Access-Control-Allow-Origin", allowedOrigin), ("Vary", "Origin"),
                                          ("Access-Control-Expose-Headers", "X-Registry-Index")]
            }
            if let durability, method == .post, response.status < 300, api.pendingJournalCount > journalBefore {
                // A change: acknowledged once it is written (or fsynced), or answered 503.
                durability.hold(request.park(), response, route: route, method: method, arrived: now)
            } else {
                request.reply(response)
                metrics.countRequest(route: route, method: method, status: response.status,
                                     seconds: Double(Clock.monotonicNow().duration(since: now).wholeNanoseconds) / 1e9)
            }
        case .park(let target, let wait):
            if let allowedOrigin { request.addCORSHeaders(origin: allowedOrigin) }
            let admission = request.inspect { hub.admission(for: $0) }
            if let refusal = admission.refusal {
                request.reply(refusal)
                metrics.countRequest(route: route, method: method, status: refusal.status, seconds: nil)
            } else if stopping {
                request.reply(api.read(target, now: now, wallClock: wallClock))
                metrics.countRequest(route: route, method: method, status: 200, seconds: nil)
            } else {
                metrics.countRequest(route: route, method: method, status: 200, seconds: nil)
                hub.park(request.park(), target: target, wait: wait, client: admission.client)
            }
        case .stream(let target):
            if let allowedOrigin { request.addCORSHeaders(origin: allowedOrigin) }
            let admission = request.inspect { hub.admission(for: $0) }
            if let refusal = admission.refusal {
                request.reply(refusal)
                metrics.countRequest(route: route, method: method, status: refusal.status, seconds: nil)
            } else {
                metrics.countRequest(route: route, method: method, status: 200, seconds: nil)
                hub.openStream(request.park(), target: target, now: now, wallClock: wallClock, client: admission.client)
            }
        }
        afterCallback(now: now)
    }

    private func expiryTimerFired() {
        armedDeadline = nil
        let now = Clock.monotonicNow()
        let progress = api.expireDue(now: now, limit: Self.expiryBatch)
        if progress.moreDue {
            // Yield to the loop so that requests are served between batches.
            arm(at: now.nanoseconds, now: now)
        }
        afterCallback(now: now)
    }

    /// Logs what the callback expired and makes sure the timer is armed no later than the
    /// registry's next deadline.
    private func afterCallback(now: Instant) {
        api.logEvents(now: now)
        hub.noteChanges(api.takeChangedServices())
        api.maintainListing()
        durability?.noteActivity()
        logger.flush()
        guard let next = api.nextDeadline?.nanoseconds else { return }
        if let armed = armedDeadline, armed <= next { return }
        arm(at: next, now: now)
    }

    private func arm(at deadline: Int64, now: Instant) {
        guard let expiryTimer else { return }
        // Round up to the microsecond so the timer never fires just before the deadline.
        let delay = max(0, deadline - now.nanoseconds)
        let microseconds = (delay + 999) / 1000
        var interval = timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
        CLibevent_evtimer_add(expiryTimer, &interval)
        armedDeadline = deadline
    }

    private static func localPort(of socket: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard result == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
        default:
            return nil
        }
    }
}
