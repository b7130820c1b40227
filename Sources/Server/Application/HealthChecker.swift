#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Registry
import RegistryWire
import TLS

/// What a check's last run left behind: soft state, read on demand (`/discover`, Consul's
/// view), never journaled and never moving the index, so that frequent checks cost nothing
/// beyond their own requests.
struct CheckResult {
    /// Consul's form: `HTTP GET http://…/health: 200 OK Output: …`.
    var output: String
    /// Wall-clock nanoseconds.
    var finishedAt: Int64
    var duration: Duration
}

/// Runs the HTTP and TCP checks instances registered, and watches their TTL checks, on the
/// loop: each with its own libevent timer, spread over its interval, at most
/// `maxInFlight` at once (the rest wait their turn in order), each with its timeout. HTTP
/// through evhttp's client on one keep-alive connection per check, TCP with a bufferevent
/// connect; host names resolved with evdns (never a blocking call), and every address
/// checked against `--check-allow` before anything connects.
///
/// It follows the registry through change notices: the services that changed are read
/// again, instance by instance where the version moved, and each check's run is made,
/// replaced or dropped to match. A verdict that differs from the registry's goes through
/// `RegistryService.setCheckStatus` (a write, committed like any other); critical for longer
/// than a check's `deregisterAfter` deregisters the instance. In a cluster it runs on the
/// leader only, from scratch when this replica starts leading (so a check's critical time
/// starts again at a change of leader).
///
/// Scheduling: the first run of a new check comes within min(interval, 1 s), so that a new
/// instance is judged at once; the second at a random point of 0.5–1.5 intervals after it,
/// which spreads checks registered together over their interval; after that one every
/// interval ± 2 %. A run is scheduled from the start of the one before, so slow targets do
/// not make a check drift; a run still going when the next is due skips that one.
final class HealthChecker {
    struct InstanceName: Hashable {
        let service: String
        let id: String
    }

    /// Bytes of a response body kept as output (Consul keeps 4 KiB).
    static let outputBytes = 4096
    static let userAgent = "service-registry/\(RegistryVersion.text) health check"

    let service: RegistryService
    let loop: EventLoop
    let logger: Logger
    let activeChecks: Bool
    let allow: NetworkAllowList
    let maxInFlight: Int

    private var runs: [InstanceName: [CheckRun]] = [:]
    /// Per service: each instance slot's version and id as last read.
    private var known: [String: [Int32: (version: UInt64, id: String)]] = [:]
    /// Moves whenever a result of the instance's checks is recorded: what renderings compare.
    private(set) var generations: [InstanceName: UInt64] = [:]
    /// The same per service: what a rendering of a whole service compares (Consul's view).
    private var serviceGenerations: [String: UInt64] = [:]
    private var waiting: [CheckRun] = []
    private var waitingHead = 0
    private var drainingQueue = false
    private(set) var inFlight = 0
    private var running = false
    private var dns: OpaquePointer?
    private var tlsVerifying: TLSClientContext?
    private var tlsUnverified: TLSClientContext?
    /// Connections to free outside their own callbacks.
    private var retired: [OpaquePointer] = []
    private var random = SystemRandomNumberGenerator()

    // Figures for `/metrics`.
    private(set) var completed: [CheckStatus: UInt64] = [:]
    private(set) var skipped: UInt64 = 0
    private(set) var refused: UInt64 = 0
    private(set) var deregistered: UInt64 = 0
    /// Run durations, in the buckets of `latencyBounds` (seconds), and their sum.
    static let latencyBounds: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]
    private(set) var latencyBuckets = [UInt64](repeating: 0, count: HealthChecker.latencyBounds.count + 1)
    private(set) var latencySum = 0.0

    init(service: RegistryService, loop: EventLoop, logger: Logger, activeChecks: Bool, allow: NetworkAllowList, maxInFlight: Int) {
        self.service = service
        self.loop = loop
        self.logger = logger
        self.activeChecks = activeChecks
        self.allow = allow
        self.maxInFlight = maxInFlight
        service.onChange { [unowned self] changed in
            guard running else { return }
            for name in changed { sync(service: name) }
        }
        service.roleListeners.append { [unowned self] leading in
            leading ? start() : stop()
        }
        service.onEndOfTurn { [unowned self] in
            for connection in retired { evhttp_connection_free(connection) }
            retired.removeAll()
        }
    }

    /// Starts following the registry (at start-up when leading, and on becoming the leader).
    func start() {
        guard !running, service.isLeading else { return }
        running = true
        for name in service.snapshot.serviceNames { sync(service: name) }
    }

    /// Stops every check (on losing the lead, and before exit).
    func stop() {
        guard running else { return }
        running = false
        for run in runs.values.joined() { run.close() }
        runs.removeAll()
        known.removeAll()
        generations.removeAll()
        // The results are gone: renderings of every service that had some are out of date.
        for service in serviceGenerations.keys { serviceGenerations[service, default: 0] &+= 1 }
        waiting.removeAll()
        waitingHead = 0
        inFlight = 0
    }

    /// Frees what libevent holds for the checker; after `stop`, before the loop is freed.
    func close() {
        stop()
        for connection in retired { evhttp_connection_free(connection) }
        retired.removeAll()
        if let dns { evdns_base_free(dns, 0) }
        dns = nil
    }

    // MARK: Reads

    /// The results of an instance's checks by check id, and their generation.
    func results(service: String, id: String) -> (generation: UInt64, byCheck: [String: CheckResult]) {
        let name = InstanceName(service: service, id: id)
        guard let list = runs[name] else { return (0, [:]) }
        var byCheck: [String: CheckResult] = [:]
        for run in list { if let result = run.result { byCheck[run.check.id] = result } }
        return (generations[name] ?? 0, byCheck)
    }

    /// A TTL check's report (Consul's `check/pass?note=`, `check/update`): its output is
    /// kept as a run's would be. Only where checks are followed (the leader).
    func noteReport(service: String, id: String, check: String, output: String) {
        let name = InstanceName(service: service, id: id)
        guard let run = runs[name]?.first(where: { $0.check.id == check }) else { return }
        run.result = CheckResult(output: output, finishedAt: Clock.wallNow(), duration: .zero)
        noteResult(name)
    }

    /// Moves whenever a result of one of the service's checks is recorded.
    func generation(ofService service: String) -> UInt64 {
        serviceGenerations[service] ?? 0
    }

    private func noteResult(_ name: InstanceName) {
        generations[name, default: 0] &+= 1
        serviceGenerations[name.service, default: 0] &+= 1
    }

    /// Checks followed, by their current verdict (`/metrics`).
    var countsByStatus: [CheckStatus: Int] {
        var counts: [CheckStatus: Int] = [:]
        for run in runs.values.joined() { counts[run.check.status, default: 0] += 1 }
        return counts
    }

    var queued: Int { waiting.count - waitingHead }

    // MARK: Following the registry

    private func sync(service name: String) {
        let now = Clock.monotonicNow()
        var previous = known[name] ?? [:]
        var next: [Int32: (version: UInt64, id: String)] = [:]
        var changed: [InstanceSnapshot] = []
        var gone: [String] = []
        service.read { registry in
            for (slot, version) in registry.instanceVersions(ofService: name, now: now) {
                let old = previous.removeValue(forKey: slot)
                if let old, old.version == version {
                    next[slot] = old
                    continue
                }
                let instance = registry.instance(inSlot: slot)
                // A freed slot given to another instance.
                if let old, old.id != instance.id { gone.append(old.id) }
                changed.append(instance)
                next[slot] = (version, instance.id)
            }
        }
        // Gone: removed, expired, or its slot taken by another (unless it came back elsewhere).
        gone += previous.values.map(\.id)
        if !gone.isEmpty {
            let present = Set(changed.map(\.id))
            for id in gone where !present.contains(id) { drop(InstanceName(service: name, id: id)) }
        }
        known[name] = next.isEmpty ? nil : next
        for instance in changed { reconcile(InstanceName(service: name, id: instance.id), instance, now: now) }
    }

    private func drop(_ name: InstanceName) {
        guard let list = runs.removeValue(forKey: name) else { return }
        for run in list { retire(run) }
        generations[name] = nil
    }

    /// Closes a run that is no longer wanted; one in flight frees its place.
    private func retire(_ run: CheckRun) {
        if run.isRunning {
            run.isRunning = false
            inFlight -= 1
        }
        run.close()
        startWaiting(now: Clock.monotonicNow())
    }

    private func reconcile(_ name: InstanceName, _ instance: InstanceSnapshot, now: Instant) {
        let existing = runs[name] ?? []
        guard !instance.checks.isEmpty || !existing.isEmpty else { return }
        var kept: [CheckRun] = []
        for check in instance.checks {
            if let run = existing.first(where: { $0.check.hasSameDefinition(as: check) && !$0.closed }) {
                if run.check.status != check.status {
                    run.check.status = check.status
                    run.noteVerdict(now: now)
                }
                kept.append(run)
                if !check.isActive { scheduleTTL(run, now: now) }
            } else {
                let run = CheckRun(checker: self, owner: name, check: check, base: loop.base, now: now)
                kept.append(run)
                start(run, now: now)
            }
        }
        for run in existing where !kept.contains(where: { $0 === run }) { retire(run) }
        runs[name] = kept.isEmpty ? nil : kept
        noteResult(name)
    }

    private func start(_ run: CheckRun, now: Instant) {
        if !run.check.isActive {
            scheduleTTL(run, now: now)
            return
        }
        guard activeChecks else {
            run.result = CheckResult(output: "not run: this registry runs no HTTP or TCP checks (--checks off)",
                                     finishedAt: Clock.wallNow(), duration: .zero)
            markNotRun(run, now: now)
            return
        }
        let first = min(run.check.interval.wholeNanoseconds, 1_000_000_000)
        run.schedule(afterNanoseconds: Int64.random(in: 0..<max(1, first), using: &random))
    }

    /// `--checks off`: the check passes, unrun. Looked at again a second later, for a write a
    /// cluster deferred (another write to the instance was on its way) or failed.
    private func markNotRun(_ run: CheckRun, now: Instant) {
        guard run.check.status != .passing else { return }
        _ = service.setCheckStatus(service: run.owner.service, id: run.owner.id, check: run.check.id, to: .passing, now: now)
        run.schedule(afterNanoseconds: 1_000_000_000)
    }

    // MARK: Runs

    /// The run's timer: a due start (active checks) or a TTL to look at.
    fileprivate func timerFired(_ run: CheckRun) {
        guard !run.closed else { return }
        let now = Clock.monotonicNow()
        if !run.check.isActive {
            ttlDue(run, now: now)
            return
        }
        if !activeChecks {
            markNotRun(run, now: now)
            return
        }
        if run.isRunning || run.isQueued {
            skipped += 1
            run.schedule(afterNanoseconds: nextGap(run))
            return
        }
        if inFlight >= maxInFlight {
            run.isQueued = true
            waiting.append(run)
            return
        }
        begin(run, now: now)
    }

    private func nextGap(_ run: CheckRun) -> Int64 {
        let interval = Double(run.check.interval.wholeNanoseconds)
        run.starts += 1
        let factor = run.starts == 1 ? Double.random(in: 0.5..<1.5, using: &random) : Double.random(in: 0.98..<1.02, using: &random)
        return Int64(interval * factor)
    }

    private func begin(_ run: CheckRun, now: Instant) {
        inFlight += 1
        run.isRunning = true
        run.attempt &+= 1
        run.retried = false
        run.startedAt = now.nanoseconds
        run.schedule(afterNanoseconds: nextGap(run))
        run.armTimeout(run.check.timeout)
        switch run.check.probe {
        case .http(let http):
            guard let url = http.target else {
                finish(run, .critical, "HTTP \(http.method) \(http.url): not a URL this checker can send")
                return
            }
            resolve(run, host: url.host) { [unowned self] address in connectHTTP(run, http, url, address: address) }
        case .tcp(let host, let port):
            resolve(run, host: host) { [unowned self] address in connectTCP(run, address: address, port: port) }
        case .ttl:
            break
        }
    }

    /// Resolves a name (evdns, with /etc/hosts), or takes a numeric address as it is; either
    /// way the address must be in `--check-allow`.
    private func resolve(_ run: CheckRun, host: String, then connect: @escaping (String) -> Void) {
        if NetworkAllowList.bytes(of: host) != nil {
            admit(run, addresses: [host], name: nil, then: connect)
            return
        }
        if dns == nil { dns = evdns_base_new(loop.base, Int32(EVDNS_BASE_INITIALIZE_NAMESERVERS)) }
        guard let dns else {
            finish(run, .critical, "\(run.label): cannot resolve \(host): no DNS resolver could be set up")
            return
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        let attempt = run.attempt
        let lookup = DNSLookup { [unowned self] result, addresses in
            run.dnsRequest = nil
            guard !run.closed, run.attempt == attempt, run.isRunning else { return }
            guard result == 0, !addresses.isEmpty else {
                let reason = result == 0 ? "no address" : String(cString: evutil_gai_strerror(result))
                finish(run, .critical, "\(run.label): cannot resolve \(host): \(reason)")
                return
            }
            admit(run, addresses: addresses, name: host, then: connect)
        }
        let context = Unmanaged.passRetained(lookup).toOpaque()
        run.dnsRequest = evdns_getaddrinfo(dns, host, nil, &hints, { result, list, context in
            let lookup = Unmanaged<DNSLookup>.fromOpaque(context!).takeRetainedValue()
            var addresses: [String] = []
            var next = list
            while let entry = next {
                if let address = entry.pointee.ai_addr { addresses.append(DNSLookup.numeric(address)) }
                next = entry.pointee.ai_next
            }
            if let list { evutil_freeaddrinfo(list) }
            lookup.done(result, addresses.filter { !$0.isEmpty })
        }, context)
    }

    private func admit(_ run: CheckRun, addresses: [String], name: String?, then connect: (String) -> Void) {
        guard let address = addresses.first(where: allow.allows) else {
            refused += 1
            let shown = name.map { "\($0) (\(addresses.joined(separator: ", ")))" } ?? addresses.joined(separator: ", ")
            finish(run, .critical, "\(run.label): refused: \(shown) is outside the networks checks may reach (--check-allow)")
            return
        }
        run.address = address
        connect(address)
    }

    private func connectHTTP(_ run: CheckRun, _ http: HealthCheck.HTTPProbe, _ url: CheckURL, address: String) {
        if let connection = run.connection, run.connectedTo != address || url.isHTTPS {
            // A TLS connection is not reconnected by evhttp once closed: a new one each run.
            retired.append(connection)
            loop.scheduleEndOfTurn()
            run.connection = nil
        }
        let reused = run.connection != nil
        if run.connection == nil {
            var made: OpaquePointer?
            if url.isHTTPS {
                do {
                    let context: TLSClientContext
                    if http.tlsSkipVerify {
                        if tlsUnverified == nil { tlsUnverified = try TLSClientContext(verifyPeer: false) }
                        context = tlsUnverified!
                    } else {
                        if tlsVerifying == nil { tlsVerifying = try TLSClientContext() }
                        context = tlsVerifying!
                    }
                    if let events = context.connectingBufferevent(loop.base, host: url.host) {
                        made = evhttp_connection_base_bufferevent_new(loop.base, nil, events, address, UInt16(url.port))
                    }
                } catch {
                    finish(run, .critical, "\(run.label): TLS is not available: \(error.message)")
                    return
                }
            } else {
                made = evhttp_connection_base_new(loop.base, nil, address, UInt16(url.port))
            }
            guard let made else {
                finish(run, .critical, "\(run.label): cannot create a connection to \(address)")
                return
            }
            // A run's timeout is the checker's own timer; this one is how long the connection
            // may sit idle, which must outlast the interval or every run would connect anew.
            let idle = run.check.interval + .seconds(10)
            var interval = timeval(tv_sec: idle.timeval.seconds, tv_usec: idle.timeval.microseconds)
            evhttp_connection_set_timeout_tv(made, &interval)
            evhttp_connection_set_retries(made, 0)
            evhttp_connection_set_max_headers_size(made, 16 * 1024)
            run.connection = made
            run.connectedTo = address
        }
        let attempt = run.attempt
        let call = HTTPCall { [unowned self] request, call in
            run.request = nil
            guard !run.closed, run.attempt == attempt, run.isRunning else { return }
            guard let request, evhttp_request_get_response_code(request) != 0 else {
                // A kept connection the target closed as this run began (its idle timeout
                // near the interval) fails with nothing read: once, on a new connection.
                if reused && !run.retried, let connection = run.connection {
                    run.retried = true
                    retired.append(connection)
                    loop.scheduleEndOfTurn()
                    run.connection = nil
                    connectHTTP(run, http, url, address: address)
                    return
                }
                var reason = call.failure
                if url.isHTTPS, let connection = run.connection,
                   let failure = TLSClientContext.failure(of: evhttp_connection_get_bufferevent(connection)) {
                    reason = "TLS: " + failure
                }
                finish(run, .critical, "\(run.label): \(reason) (\(address):\(url.port))")
                return
            }
            let code = Int(evhttp_request_get_response_code(request))
            let line = evhttp_request_get_response_code_line(request).map { String(cString: $0) } ?? ""
            let status: CheckStatus = (200..<300).contains(code) ? .passing : code == 429 ? .warning : .critical
            let body = String(decoding: run.body, as: UTF8.self)
            finish(run, status, "\(run.label): \(code) \(line) Output: \(body)")
        }
        run.body.removeAll(keepingCapacity: true)
        let context = Unmanaged.passRetained(call).toOpaque()
        guard let request = evhttp_request_new({ request, context in
            Unmanaged<HTTPCall>.fromOpaque(context!).takeRetainedValue().finish(request)
        }, context) else {
            Unmanaged<HTTPCall>.fromOpaque(context).release()
            finish(run, .critical, "\(run.label): cannot create a request")
            return
        }
        evhttp_request_set_error_cb(request) { error, context in
            let call = Unmanaged<HTTPCall>.fromOpaque(context!)
            if error == EVREQ_HTTP_REQUEST_CANCEL {
                // Canceled by the checker (a timeout, a removal): libevent calls nothing else.
                call.release()
            } else {
                let call = call.takeUnretainedValue()
                // libevent restores the socket's error before this call; it says why only for
                // a connection that failed, not for an answer that was malformed.
                if error == EVREQ_HTTP_EOF || error == EVREQ_HTTP_BUFFER_ERROR { call.errorCode = errno != 0 ? errno : nil }
                call.error = error
            }
        }
        evhttp_request_set_chunked_cb(request) { request, context in
            guard let request, let buffer = evhttp_request_get_input_buffer(request) else { return }
            Unmanaged<HTTPCall>.fromOpaque(context!).takeUnretainedValue().chunk?(buffer)
        }
        call.chunk = { [unowned run] buffer in
            let length = evbuffer_get_length(buffer)
            let keep = min(length, max(0, HealthChecker.outputBytes - run.body.count))
            if keep > 0 {
                var bytes = [UInt8](repeating: 0, count: keep)
                evbuffer_copyout(buffer, &bytes, keep)
                run.body += bytes
            }
            evbuffer_drain(buffer, length)
        }
        let headers = evhttp_request_get_output_headers(request)
        var hostGiven = false
        for header in http.headers where header.key.lowercased() == "host" { hostGiven = true }
        if !hostGiven { evhttp_add_header(headers, "Host", url.hostHeader) }
        evhttp_add_header(headers, "User-Agent", Self.userAgent)
        evhttp_add_header(headers, "Accept", "text/plain, text/*, */*")
        for header in http.headers { evhttp_add_header(headers, header.key, header.value) }
        // Set first: a connection that fails at once (a local refusal, no route) runs the
        // request's callbacks inside evhttp_make_request, which clear it.
        run.request = request
        if evhttp_make_request(run.connection, request, Self.command(http.method), url.target) != 0 {
            // Taken off the connection's queue, neither answered nor freed (libevent frees it
            // itself only when it cannot copy the target, which is out of memory).
            run.request = nil
            evhttp_request_free(request)
            Unmanaged<HTTPCall>.fromOpaque(context).release()
            finish(run, .critical, "\(run.label): cannot send the request to \(address)")
        }
    }

    static func command(_ method: String) -> evhttp_cmd_type {
        switch method {
        case "HEAD": return EVHTTP_REQ_HEAD
        case "POST": return EVHTTP_REQ_POST
        case "PUT": return EVHTTP_REQ_PUT
        case "DELETE": return EVHTTP_REQ_DELETE
        case "OPTIONS": return EVHTTP_REQ_OPTIONS
        case "PATCH": return EVHTTP_REQ_PATCH
        case "TRACE": return EVHTTP_REQ_TRACE
        default: return EVHTTP_REQ_GET
        }
    }

    private func connectTCP(_ run: CheckRun, address: String, port: Int) {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let text = address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
        let parsed = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { evutil_parse_sockaddr_port(text, $0, &length) }
        }
        guard parsed == 0, let events = bufferevent_socket_new(loop.base, -1, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
            finish(run, .critical, "\(run.label): cannot open a socket")
            return
        }
        run.tcpEvents = events
        bufferevent_setcb(events, nil, nil, { events, what, context in
            let run = Unmanaged<CheckRun>.fromOpaque(context!).takeUnretainedValue()
            run.checker?.tcpEvent(run, what: what)
        }, Unmanaged.passUnretained(run).toOpaque())
        let started = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bufferevent_socket_connect(events, $0, length) }
        }
        if started != 0 {
            let reason = String(cString: strerror(errno))
            run.closeTCP()
            finish(run, .critical, "\(run.label): \(reason)")
        }
    }

    fileprivate func tcpEvent(_ run: CheckRun, what: Int16) {
        let error = errno
        run.closeTCP()
        guard run.isRunning else { return }
        if what & Int16(BEV_EVENT_CONNECTED) != 0 {
            finish(run, .passing, "\(run.label): Success")
        } else {
            finish(run, .critical, "\(run.label): \(String(cString: strerror(error)))")
        }
    }

    fileprivate func timedOut(_ run: CheckRun) {
        guard run.isRunning, !run.closed else { return }
        // Finished first: a canceled lookup may call back at once, and must find it done.
        let request = run.request
        run.request = nil
        finish(run, .critical, "\(run.label): timed out after \(run.check.timeout.secondsText)")
        if let request { evhttp_cancel_request(request) }
        run.cancelLookup()
        run.closeTCP()
    }

    private func finish(_ run: CheckRun, _ status: CheckStatus, _ output: String) {
        guard run.isRunning else { return }
        run.isRunning = false
        run.cancelTimeout()
        inFlight -= 1
        let now = Clock.monotonicNow()
        let duration = Duration.nanoseconds(now.nanoseconds - run.startedAt)
        run.result = CheckResult(output: output, finishedAt: Clock.wallNow(), duration: duration)
        noteResult(run.owner)
        completed[status, default: 0] += 1
        let seconds = Double(duration.wholeNanoseconds) / 1e9
        latencySum += seconds
        latencyBuckets[Self.latencyBounds.firstIndex { seconds <= $0 } ?? Self.latencyBounds.count] += 1
        verdict(run, status, now: now)
        startWaiting(now: now)
    }

    private func startWaiting(now: Instant) {
        // A run that fails at once (refused by --check-allow, a local refusal) finishes inside
        // `begin`, which would come back here: the outer call goes on with the queue.
        guard !drainingQueue else { return }
        drainingQueue = true
        defer { drainingQueue = false }
        while inFlight < maxInFlight, waitingHead < waiting.count {
            let next = waiting[waitingHead]
            waitingHead += 1
            next.isQueued = false
            if !next.closed { begin(next, now: now) }
        }
        if waitingHead > 1024 && waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
    }

    /// A run's verdict: written when it differs from the registry's; critical for long
    /// enough deregisters.
    private func verdict(_ run: CheckRun, _ status: CheckStatus, now: Instant) {
        // Compared with the registry's verdict as the last change notice gave it: a write that
        // was deferred or failed (in a cluster) is written again by the next run.
        if status != run.check.status {
            _ = service.setCheckStatus(service: run.owner.service, id: run.owner.id, check: run.check.id, to: status, now: now)
        }
        if status == .critical, let since = run.criticalSince, let after = run.check.deregisterAfter,
           now.nanoseconds - since >= after.wholeNanoseconds {
            deregisterForCheck(run, now: now)
        }
    }

    private func deregisterForCheck(_ run: CheckRun, now: Instant) {
        let owner = run.owner
        let outcome = service.deregister(InstanceReference(service: owner.service, id: owner.id), now: now)
        if case .done = outcome {
            deregistered += 1
            logger.info("check_deregistered", ["service": owner.service, "id": owner.id, "check": run.check.id,
                                               "critical_for": (run.check.deregisterAfter ?? .zero).secondsText])
        }
    }

    // MARK: TTL checks

    private func scheduleTTL(_ run: CheckRun, now: Instant) {
        guard let ttl = run.check.ttl, let instance = service.snapshot.instance(service: run.owner.service, id: run.owner.id) else { return }
        if run.check.status == .critical {
            guard let after = run.check.deregisterAfter, let since = run.criticalSince else {
                run.cancelTimer()
                return
            }
            run.schedule(afterNanoseconds: max(0, since + after.wholeNanoseconds - now.nanoseconds))
        } else {
            // Counted from the last report (a heartbeat of the instance), or from now when this
            // replica has just started following it.
            let from = max(instance.lastHeartbeat.nanoseconds, run.createdAt)
            run.schedule(afterNanoseconds: max(0, from + ttl.wholeNanoseconds - now.nanoseconds))
        }
    }

    private func ttlDue(_ run: CheckRun, now: Instant) {
        guard let ttl = run.check.ttl, let instance = service.snapshot.instance(service: run.owner.service, id: run.owner.id) else { return }
        if run.check.status == .critical {
            if let since = run.criticalSince, let after = run.check.deregisterAfter, now.nanoseconds - since >= after.wholeNanoseconds {
                deregisterForCheck(run, now: now)
            } else {
                scheduleTTL(run, now: now)
            }
            return
        }
        let from = max(instance.lastHeartbeat.nanoseconds, run.createdAt)
        guard now.nanoseconds - from >= ttl.wholeNanoseconds else {
            scheduleTTL(run, now: now)
            return
        }
        run.result = CheckResult(output: "TTL expired: no report for \(ttl.secondsText)", finishedAt: Clock.wallNow(), duration: .zero)
        noteResult(run.owner)
        _ = service.setCheckStatus(service: run.owner.service, id: run.owner.id, check: run.check.id, to: .critical, now: now)
        if run.criticalSince == nil { run.criticalSince = from + ttl.wholeNanoseconds }
        // The change notice reschedules it; looked at again in a second should the write have
        // been deferred or failed (in a cluster).
        run.schedule(afterNanoseconds: 1_000_000_000)
    }
}

/// One check as the checker runs it: its timers, its connection, its last result.
final class CheckRun {
    weak var checker: HealthChecker?
    let owner: HealthChecker.InstanceName
    var check: HealthCheck
    let createdAt: Int64
    private var timer: OpaquePointer?
    private var deadline: OpaquePointer?
    var connection: OpaquePointer?
    var connectedTo: String?
    var request: UnsafeMutablePointer<evhttp_request>?
    var tcpEvents: OpaquePointer?
    var dnsRequest: OpaquePointer?
    var attempt: UInt64 = 0
    var starts = 0
    /// This run has already moved to a new connection once.
    var retried = false
    var isRunning = false
    var isQueued = false
    var closed = false
    var startedAt: Int64 = 0
    var address = ""
    var body: [UInt8] = []
    var result: CheckResult?
    /// Monotonic nanoseconds since when its verdict has been critical, as seen here.
    var criticalSince: Int64?

    init(checker: HealthChecker, owner: HealthChecker.InstanceName, check: HealthCheck, base: OpaquePointer, now: Instant) {
        self.checker = checker
        self.owner = owner
        self.check = check
        self.createdAt = now.nanoseconds
        if check.status == .critical { criticalSince = now.nanoseconds }
        let context = Unmanaged.passUnretained(self).toOpaque()
        timer = CLibevent_evtimer_new(base, { _, _, context in
            let run = Unmanaged<CheckRun>.fromOpaque(context!).takeUnretainedValue()
            run.checker?.timerFired(run)
        }, context)
        deadline = CLibevent_evtimer_new(base, { _, _, context in
            let run = Unmanaged<CheckRun>.fromOpaque(context!).takeUnretainedValue()
            run.checker?.timedOut(run)
        }, context)
    }

    /// What a log line or an output names it by: `HTTP GET url`, `TCP host:port`.
    var label: String {
        switch check.probe {
        case .http(let http): return "HTTP \(http.method) \(http.url)"
        case .tcp(let host, let port): return "TCP " + HealthCheck.hostPort(host: host, port: port)
        case .ttl: return "TTL"
        }
    }

    func noteVerdict(now: Instant) {
        if check.status == .critical {
            if criticalSince == nil { criticalSince = now.nanoseconds }
        } else {
            criticalSince = nil
        }
    }

    func schedule(afterNanoseconds delay: Int64) {
        guard let timer, !closed else { return }
        var interval = timeval(tv_sec: Int(delay / 1_000_000_000), tv_usec: Int(delay % 1_000_000_000 / 1000))
        _ = CLibevent_evtimer_add(timer, &interval)
    }

    func cancelTimer() {
        if let timer { _ = CLibevent_evtimer_del(timer) }
    }

    func armTimeout(_ timeout: Duration) {
        guard let deadline else { return }
        var interval = timeval(tv_sec: timeout.timeval.seconds, tv_usec: timeout.timeval.microseconds)
        _ = CLibevent_evtimer_add(deadline, &interval)
    }

    func cancelTimeout() {
        if let deadline { _ = CLibevent_evtimer_del(deadline) }
    }

    func cancelLookup() {
        if let dnsRequest {
            self.dnsRequest = nil
            evdns_getaddrinfo_cancel(dnsRequest)
        }
    }

    /// Closes a TCP probe's socket with a reset (SO_LINGER 0): a thousand checks a second
    /// must not leave a thousand sockets a second in TIME_WAIT.
    func closeTCP() {
        guard let events = tcpEvents else { return }
        tcpEvents = nil
        let socket = bufferevent_getfd(events)
        if socket >= 0 {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(socket, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        bufferevent_free(events)
    }

    /// Stops everything: the request (its context released by the cancel), the lookup, the
    /// socket, the timers and the connection.
    func close() {
        guard !closed else { return }
        closed = true
        if let request {
            self.request = nil
            evhttp_cancel_request(request)
        }
        cancelLookup()
        closeTCP()
        if let timer { event_free(timer) }
        if let deadline { event_free(deadline) }
        timer = nil
        deadline = nil
        if let connection { evhttp_connection_free(connection) }
        connection = nil
    }

    deinit {
        close()
    }
}

/// A name lookup in flight; its context is retained until libevent calls back (once, also
/// when canceled).
final class DNSLookup {
    let done: (Int32, [String]) -> Void

    init(_ done: @escaping (Int32, [String]) -> Void) {
        self.done = done
    }

    static func numeric(_ address: UnsafeMutablePointer<sockaddr>) -> String {
        var text = [CChar](repeating: 0, count: 64)
        if Int32(address.pointee.sa_family) == AF_INET {
            address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                var raw = v4.pointee.sin_addr
                _ = evutil_inet_ntop(AF_INET, &raw, &text, text.count)
            }
        } else if Int32(address.pointee.sa_family) == AF_INET6 {
            address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                var raw = v6.pointee.sin6_addr
                _ = evutil_inet_ntop(AF_INET6, &raw, &text, text.count)
            }
        }
        return String(cString: text)
    }
}

/// An HTTP check's request in flight; its context is retained until libevent calls back.
final class HTTPCall {
    let done: (UnsafeMutablePointer<evhttp_request>?, HTTPCall) -> Void
    var errorCode: Int32?
    var error: evhttp_request_error?
    var chunk: ((OpaquePointer) -> Void)?

    init(_ done: @escaping (UnsafeMutablePointer<evhttp_request>?, HTTPCall) -> Void) {
        self.done = done
    }

    func finish(_ request: UnsafeMutablePointer<evhttp_request>?) {
        // A refused connection reaches only this callback, with the socket's error still set.
        if request == nil, error == nil, errno != 0 { errorCode = errno }
        done(request, self)
    }

    /// Why a request got no answer, in words.
    var failure: String {
        if let errorCode, errorCode != 0 { return String(cString: strerror(errorCode)) }
        switch error {
        case EVREQ_HTTP_TIMEOUT?: return "timed out"
        case EVREQ_HTTP_EOF?: return "the connection closed before an answer"
        case EVREQ_HTTP_INVALID_HEADER?: return "the answer is not valid HTTP"
        case EVREQ_HTTP_DATA_TOO_LONG?: return "the answer's headers are too large"
        default: return "the connection failed"
        }
    }
}
