#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Registry
import HTTPParsing

/// Every request the server holds without answering: parked blocking queries and open
/// event streams. This is the one place they wait, and each has one way out (`finish`).
///
/// Watchers are indexed by the service they watch, so a change wakes only that service's
/// watchers (plus those of `/services` and `/watch`). Changes are collected during a loop
/// turn and delivered by one deferred callback at its end, so that many changes in one turn
/// wake each watcher once.
///
/// A held request has reads turned off by evhttp, so a client that leaves would go
/// unnoticed until a write failed. Each watcher therefore has the transport watch its
/// connection (`Transport.HeldWatch`): the client closing, or sending more, finishes the
/// watcher at once instead of leaving it until its wait ends.
///
/// Memory stays proportional to the state, not to the watchers times the state: streams of
/// the same target share one rendered copy of each event (added to each connection by
/// reference), and a stream whose client reads slower than the changes come is coalesced:
/// while its last event is still unwritten, newer states are not queued behind it; the
/// latest is sent once it drains. So a slow stream holds at most one event, shared. One
/// that stops reading altogether is closed by evhttp's write timeout (`--idle-timeout`).
/// Held requests are capped in total and, optionally, per client address.
final class WatchHub {
    /// Watchers answered per callback before the loop gets a turn.
    static let wakeBatch = 256
    /// A stream's socket send buffer (the kernel doubles it). Linux grows a buffer up to
    /// 4 MiB for a client that does not read: every change would then copy a whole event
    /// into the kernel for each slow stream before the registry saw any backlog (300 such
    /// streams of a 220 KB state cost 300 ms of writes per change). Capped, the kernel holds
    /// about one event and the registry's coalescing takes over.
    static let streamSendBufferBytes: Int32 = 128 * 1024

    struct Limits {
        /// Long-polls and streams held at once; one more is answered 503.
        var maxWatchers: Int
        /// Per client address; 0 for no limit. One more is answered 429.
        var maxWatchersPerClient: Int
    }

    final class Watcher {
        enum Kind {
            case poll
            case stream(lastIndex: UInt64?)
        }

        let request: UnsafeMutablePointer<evhttp_request>
        let target: WatchTarget
        var kind: Kind
        var held: Transport.HeldWatch?
        /// The transport's side of the connection, for its backlog and drain notices.
        let connection: Connection?
        /// The client's address, when watchers are counted per client.
        let client: String?
        /// A newer state was held back while the last event was still unwritten.
        var stale = false
        /// What `/metrics` counts the answer under (a poll is counted when it is answered).
        let route: Int
        let method: HTTPMethod
        /// The access log's record of the request; nil when that log is off.
        let access: AccessLog.Entry?
        unowned let hub: WatchHub

        init(request: UnsafeMutablePointer<evhttp_request>, target: WatchTarget, kind: Kind, client: String?, route: Int,
             method: HTTPMethod, access: AccessLog.Entry?, hub: WatchHub) {
            self.request = request
            self.target = target
            self.kind = kind
            self.connection = Transport.connection(of: request)
            self.client = client
            self.route = route
            self.method = method
            self.access = access
            self.hub = hub
        }
    }

    /// Bytes shared by reference among the connections they are queued on.
    final class SharedBytes: Sendable {
        let bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    /// One connection's hold on shared bytes: counted in `OutputMemory` while libevent has it.
    private final class Hold {
        let shared: SharedBytes
        let base: UnsafeRawPointer
        init(_ shared: SharedBytes) {
            self.shared = shared
            base = shared.bytes.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) }
            OutputMemory.retain(base, bytes: shared.bytes.count)
        }
        deinit { OutputMemory.release(base) }
    }

    /// The last event rendered per sharing key (see `WatchTarget.sharingKey`).
    private var sharedEvents: [String: (index: UInt64, event: SharedBytes)] = [:]
    private var watchersByClient: [String: Int] = [:]
    let limits: Limits

    private let api: NativeAPI
    private let metrics: Metrics
    private let logger: Logger
    private let accessLog: AccessLog?
    private var watchers: [ObjectIdentifier: Watcher] = [:]
    private var byService: [String: Set<ObjectIdentifier>] = [:]
    private var allServices: Set<ObjectIdentifier> = []
    private var changed: Set<String> = []
    /// Watchers woken but not yet answered, in order, and the same as a set.
    private var wakeQueue: [ObjectIdentifier] = []
    private var wakeIndex = 0
    private var queued: Set<ObjectIdentifier> = []
    private var deliveryTimer: LoopTimer?
    private var random = SystemRandomNumberGenerator()

    private(set) var pollCount = 0
    private(set) var streamCount = 0

    /// Every 15 s, or often enough that a quiet stream never reaches the idle timeout.
    let keepAliveInterval: Duration

    init(loop: EventLoop, api: NativeAPI, metrics: Metrics, logger: Logger, accessLog: AccessLog?, idleTimeout: Duration,
         limits: Limits) {
        self.limits = limits
        self.accessLog = accessLog
        self.api = api
        self.metrics = metrics
        self.logger = logger
        keepAliveInterval = min(.seconds(15), idleTimeout / 2)
        deliveryTimer = loop.timer { [unowned self] in deliverChanges() }
        loop.timer(persistent: true) { [unowned self] in sendKeepAlives() }.schedule(after: keepAliveInterval)
        api.service.onChange { [unowned self] changed in noteChanges(changed) }
    }

    // MARK: Entering

    /// Whether one more request may be held for this client; the refusal otherwise.
    func admission(for request: UnsafeMutablePointer<evhttp_request>) -> (client: String?, refusal: Response?) {
        if watchers.count >= limits.maxWatchers {
            var refusal = Response.error(503, "the registry holds \(watchers.count) long-polls and streams, its limit "
                + "(--max-watchers); retry shortly, or poll without index")
            refusal.retryAfter = 1
            return (nil, refusal)
        }
        guard limits.maxWatchersPerClient > 0 else { return (nil, nil) }
        let client = Peer.of(request)?.host ?? "?"
        if watchersByClient[client, default: 0] >= limits.maxWatchersPerClient {
            var refusal = Response.error(429, "this client holds \(limits.maxWatchersPerClient) long-polls and streams, the "
                + "limit per client address (--max-watchers-per-client); close some, or retry shortly")
            refusal.retryAfter = 1
            return (client, refusal)
        }
        return (client, nil)
    }

    /// Holds a blocking query until its target changes or `wait` (plus up to 1/16 of it
    /// in jitter, so that watchers started together do not all return together) passes.
    func park(_ request: UnsafeMutablePointer<evhttp_request>, target: WatchTarget, wait: Duration, client: String?,
              route: Int, method: HTTPMethod, access: AccessLog.Entry?) {
        let watcher = Watcher(request: request, target: target, kind: .poll, client: client, route: route, method: method,
                              access: access, hub: self)
        let jitterLimit = max(1, wait.wholeNanoseconds / 16)
        let total = wait.wholeNanoseconds + Int64.random(in: 0..<jitterLimit, using: &random)
        add(watcher, timeout: .nanoseconds(total))
        pollCount += 1
    }

    /// Starts a Server-Sent Events stream: headers, then the current state as the first event,
    /// unless the client says it has that state already: `index=N`, or `Last-Event-ID: N`
    /// (what `EventSource` sends when it reconnects), with N the current index.
    func openStream(_ request: UnsafeMutablePointer<evhttp_request>, target: WatchTarget, now: Instant, wallClock: Int64,
                    client: String?, access: AccessLog.Entry?) {
        let headers = evhttp_request_get_output_headers(request)
        evhttp_add_header(headers, "X-Registry-Index", String(api.currentIndex(target, now: now)))
        evhttp_add_header(headers, "Content-Type", "text/event-stream; charset=utf-8")
        evhttp_add_header(headers, "Cache-Control", "no-cache")
        // Proxies such as nginx would otherwise buffer the stream.
        evhttp_add_header(headers, "X-Accel-Buffering", "no")
        evhttp_send_reply_start(request, 200, "OK")
        let resume = target.resumeIndex ?? evhttp_find_header(evhttp_request_get_input_headers(request), "Last-Event-ID")
            .flatMap { DecimalText.unsigned(String(cString: $0)) }
        let watcher = Watcher(request: request, target: target, kind: .stream(lastIndex: resume), client: client, route: 0,
                              method: .get, access: access, hub: self)
        add(watcher, timeout: nil)
        Transport.limitSendBuffer(of: request, to: Self.streamSendBufferBytes)
        watcher.connection?.onDrained = { [unowned self, unowned watcher] in
            if watcher.stale, watchers[ObjectIdentifier(watcher)] != nil {
                sendState(to: watcher, now: Clock.monotonicNow(), wallClock: Clock.wallNow())
            }
        }
        streamCount += 1
        if evhttp_request_get_command(request) == EVHTTP_REQ_HEAD {
            finish(watcher, now: now, wallClock: wallClock, end: .head)
            return
        }
        sendState(to: watcher, now: now, wallClock: wallClock)
    }

    private func add(_ watcher: Watcher, timeout: Duration?) {
        let key = ObjectIdentifier(watcher)
        watchers[key] = watcher
        if let client = watcher.client { watchersByClient[client, default: 0] += 1 }
        if let name = watcher.target.serviceName {
            byService[name, default: []].insert(key)
        } else {
            allServices.insert(key)
        }
        Transport.onClose(of: watcher.request) { [weak watcher] in
            if let watcher { watcher.hub.connectionClosed(watcher) }
        }
        watcher.held = Transport.HeldWatch(watcher.request, timeout: timeout) { [unowned self, unowned watcher] ending in
            let end: AccessLog.End
            switch ending {
            case .timedOut: end = .timeout
            case .clientClosed: end = .clientGone
            case .clientSentMore: end = .clientSentMore
            }
            finish(watcher, now: Clock.monotonicNow(), wallClock: Clock.wallNow(), end: end)
        }
    }

    // MARK: Changes

    /// Records services that changed; their watchers are woken once, at the end of this
    /// loop turn.
    func noteChanges(_ services: [String]) {
        guard !services.isEmpty, !watchers.isEmpty else { return }
        let idle = changed.isEmpty && wakeQueue.isEmpty
        changed.formUnion(services)
        // Called from the end-of-turn step: delivered in this same pass of the loop.
        if idle { deliveryTimer?.activate() }
    }

    private func deliverChanges() {
        if !changed.isEmpty {
            var woken = allServices
            for name in changed { woken.formUnion(byService[name] ?? []) }
            changed.removeAll(keepingCapacity: true)
            for key in woken where queued.insert(key).inserted { wakeQueue.append(key) }
        }
        let now = Clock.monotonicNow()
        let wallClock = Clock.wallNow()
        // A bounded batch per callback, like the expiry cycle: between batches the loop
        // writes the answers already made and serves other clients, so one change with
        // thousands of watchers never stalls the loop.
        var answered = 0
        while answered < Self.wakeBatch, wakeIndex < wakeQueue.count {
            let key = wakeQueue[wakeIndex]
            wakeIndex += 1
            queued.remove(key)
            guard let watcher = watchers[key] else { continue }
            answered += 1
            switch watcher.kind {
            case .poll: finish(watcher, now: now, wallClock: wallClock, end: .change)
            case .stream: sendState(to: watcher, now: now, wallClock: wallClock)
            }
        }
        if wakeIndex == wakeQueue.count {
            wakeQueue.removeAll(keepingCapacity: true)
            wakeIndex = 0
        } else {
            // A zero time-out, not `activate`: libevent runs events activated during its
            // active pass in that same pass, so only a timer lets the loop poll I/O first.
            deliveryTimer?.schedule(after: .zero)
        }
        // Answering may itself have expired instances (reads check deadlines): the service's
        // end-of-turn step sends those changes round again.
    }

    // MARK: Streams

    private func sendState(to watcher: Watcher, now: Instant, wallClock: Int64) {
        guard case .stream(let lastIndex) = watcher.kind else { return }
        // A slow reader: its last event is still unwritten. Queue nothing more behind it; the
        // latest state goes out when it drains.
        if let connection = watcher.connection, connection.pendingOutputBytes > 0 {
            watcher.stale = true
            return
        }
        let index = api.currentIndex(watcher.target, now: now)
        if lastIndex == index {
            watcher.stale = false
            return
        }
        let event = self.event(for: watcher.target, index: index, now: now, wallClock: wallClock)
        watcher.kind = .stream(lastIndex: index)
        watcher.stale = false
        write(event, to: watcher, now: now, wallClock: wallClock)
    }

    /// The event for `target` at `index`, rendered once and shared by every stream of the
    /// same target.
    private func event(for target: WatchTarget, index: UInt64, now: Instant, wallClock: Int64) -> SharedBytes {
        let key = target.sharingKey
        if let key, let shared = sharedEvents[key], shared.index == index { return shared.event }
        let state = api.read(target, now: now, wallClock: wallClock)
        var bytes = Array("id: \(state.index ?? index)\nevent: state\ndata: ".utf8)
        bytes.reserveCapacity(bytes.count + state.byteCount + 2)
        bytes.append(contentsOf: state.body)
        for segment in state.segments { bytes.append(contentsOf: segment) }
        bytes.append(contentsOf: "\n\n".utf8)
        let event = SharedBytes(bytes)
        if let key { sharedEvents[key] = (index, event) }
        return event
    }

    private static let keepAlive = SharedBytes(Array(": keep-alive\n\n".utf8))

    private func sendKeepAlives() {
        let now = Clock.monotonicNow()
        let wallClock = Clock.wallNow()
        for watcher in watchers.values {
            guard case .stream = watcher.kind else { continue }
            // One with output still queued needs no comment to show it is alive; if it stays
            // stuck, evhttp's write timeout closes it.
            if let connection = watcher.connection, connection.pendingOutputBytes > 0 { continue }
            write(Self.keepAlive, to: watcher, now: now, wallClock: wallClock)
        }
    }

    /// Queues `shared` on the watcher's connection by reference: one copy in memory for all.
    private func write(_ shared: SharedBytes, to watcher: Watcher, now: Instant, wallClock: Int64) {
        guard evhttp_request_get_connection(watcher.request) != nil, let chunk = evbuffer_new() else {
            finish(watcher, now: now, wallClock: wallClock, end: .clientGone)
            return
        }
        let hold = Hold(shared)
        let context = Unmanaged.passRetained(hold).toOpaque()
        let added = evbuffer_add_reference(chunk, hold.base, shared.bytes.count, { _, _, context in
            guard let context else { return }
            Unmanaged<Hold>.fromOpaque(context).release()
        }, context)
        if added != 0 {
            Unmanaged<Hold>.fromOpaque(context).release()
            shared.bytes.withUnsafeBytes { _ = evbuffer_add(chunk, $0.baseAddress, $0.count) }
        }
        watcher.access?.bytes += shared.bytes.count
        evhttp_send_reply_chunk(watcher.request, chunk)
        evbuffer_free(chunk)
    }

    // MARK: Leaving

    /// The connection is being freed under a watcher (write error, time-out, shutdown).
    private func connectionClosed(_ watcher: Watcher) {
        forget(watcher)
        logEnd(watcher, answer: nil, end: .connectionClosed)
        // A request detached from its failed connection is ours to free; one still attached
        // is freed by evhttp right after this callback.
        if evhttp_request_get_connection(watcher.request) == nil {
            evhttp_request_free(watcher.request)
        }
    }

    /// The one way out: answers a parked query with the current state, or ends a stream.
    func finish(_ watcher: Watcher, now: Instant, wallClock: Int64, end: AccessLog.End) {
        forget(watcher)
        Transport.onClose(of: watcher.request, nil)
        switch watcher.kind {
        case .poll:
            let answer = api.read(watcher.target, now: now, wallClock: wallClock)
            PendingRequest.send(watcher.request, answer)
            metrics.countRequest(route: watcher.route, method: watcher.method, status: answer.status, seconds: nil)
            logEnd(watcher, answer: answer, end: end)
        case .stream:
            evhttp_send_reply_end(watcher.request)
            logEnd(watcher, answer: nil, end: end)
        }
    }

    /// The access log's line for a held request that ended: a long-poll with its answer, or
    /// 499 (nginx's mark: nothing was sent) when its client left first; a stream with all
    /// its events.
    private func logEnd(_ watcher: Watcher, answer: Response?, end: AccessLog.End) {
        guard let entry = watcher.access, let accessLog else { return }
        var status: Int32 = 200
        var bytes = entry.bytes
        if case .poll = watcher.kind {
            if let answer, end != .clientGone {
                status = answer.status
                bytes = watcher.method == .head ? 0 : answer.byteCount
            } else {
                status = 499
                bytes = 0
            }
        }
        accessLog.answered(entry, status: status, bytes: bytes, now: Clock.monotonicNow(), end: end)
    }

    /// What a held read of `target` would be answered with now.
    func currentAnswer(_ target: WatchTarget, now: Instant, wallClock: Int64) -> Response {
        api.read(target, now: now, wallClock: wallClock)
    }

    /// Answers every held request; before the server closes.
    func finishAll(now: Instant, wallClock: Int64, end: AccessLog.End = .shutdown) {
        for watcher in Array(watchers.values) { finish(watcher, now: now, wallClock: wallClock, end: end) }
    }

    private func forget(_ watcher: Watcher) {
        let key = ObjectIdentifier(watcher)
        guard watchers.removeValue(forKey: key) != nil else { return }
        watcher.connection?.onDrained = nil
        if let client = watcher.client {
            let left = watchersByClient[client, default: 1] - 1
            watchersByClient[client] = left > 0 ? left : nil
        }
        if let name = watcher.target.serviceName {
            byService[name]?.remove(key)
            if byService[name]?.isEmpty == true {
                byService[name] = nil
                // No stream of this service is left to share its events.
                sharedEvents = sharedEvents.filter { !$0.key.hasPrefix(name + "|") }
            }
        } else {
            allServices.remove(key)
            if allServices.isEmpty { sharedEvents["*"] = nil }
        }
        watcher.held?.cancel()
        watcher.held = nil
        switch watcher.kind {
        case .poll: pollCount -= 1
        case .stream: streamCount -= 1
        }
    }
}
