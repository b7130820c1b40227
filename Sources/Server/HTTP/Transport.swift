#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Registry

/// Everything the server does beneath evhttp, for one listener: the one file where the
/// registry reaches past evhttp's public behaviour.
///
/// evhttp 2.1 has no hook for raw request bytes, header deadlines or connection counts.
/// `evhttp_set_bevcb` lets the server choose each connection's bufferevent, and it gives
/// evhttp a *filter* over the socket's bufferevent:
///
/// - **Input**: the filter holds every request head back until `RequestFraming` has seen it
///   whole, and lets evhttp have only what follows the framing rules. A broken rule becomes
///   a one-line poison (`!`) that evhttp refuses in order, after the requests before it; the
///   refusal is rendered from the rule that was broken (`LibeventErrorReply`).
/// - **Deadlines**: a head must arrive within `headerTimeout` of its first byte, a body within
///   `bodyTimeout` of its head (evhttp's own timeout restarts with every byte, which a client
///   sending one byte a second never lets expire). They count only while evhttp is waiting
///   for the request, not while it is busy with an earlier one.
/// - **Output**: libevent's filter calls evhttp's write callback as soon as a reply has moved
///   to the socket's buffer, before it is written, and never when evhttp enables writing
///   with data already queued: with a plain filter, the second reply on a kept-alive
///   connection stalls and a `Connection: close` reply is lost (tested against 2.1.12). So
///   the filter's output side moves nothing; the transport writes evhttp's output to the
///   socket itself, at once when a reply is made (which saves evhttp's extra loop turn and
///   its `epoll_ctl` calls), and tells evhttp its reply is written only once the socket has
///   taken all of it, exactly as the socket's bufferevent would.
/// - **Connections**: counted exactly, capped at `maxConnections` (one over the cap is told
///   `503` and closed), and the listener backs off when the process runs out of descriptors
///   instead of spinning on `accept`.
///
/// Only plain TCP listeners use this; a TLS listener (to come) keeps the plain bufferevent
/// paths, so that nothing here bypasses encryption.
final class Transport {
    struct Limits {
        var maxConnections: Int
        var maxHeadBytes: Int
        var headerTimeout: Duration
        var bodyTimeout: Duration
        /// evhttp's read and write timeout, restarted here when a slow write makes progress.
        var idleTimeout: Duration
    }

    /// What `/metrics` reports.
    struct Stats {
        var openConnections = 0
        var refusedConnections: UInt64 = 0
        var acceptErrors: UInt64 = 0
        var refusedRequests: UInt64 = 0
        var headerTimeouts: UInt64 = 0
        var bodyTimeouts: UInt64 = 0
    }

    /// What evhttp may buffer of a connection's requests on each side of the filter: enough
    /// for any one head, small enough that a client that sends without reading the answers
    /// holds a bounded amount.
    private static let bufferedInputBytes = 64 * 1024
    private static let acceptBackoff: Duration = .milliseconds(100)
    private static let acceptLogInterval: Duration = .seconds(10)

    let limits: Limits
    private(set) var stats = Stats()
    private let base: OpaquePointer
    private let logger: Logger
    let allowedMethods: (UnsafeBufferPointer<UInt8>) -> StaticString
    private var flushEvent: OpaquePointer?
    /// Connections whose output evhttp added to outside a reply the server is making, or that
    /// must be refused: handled by `flushEvent` before the loop next polls.
    private var pending: [Connection] = []
    private var listener: OpaquePointer?
    private var acceptTimer: OpaquePointer?
    private var acceptErrorsUnlogged = 0
    private var lastAcceptLog: Instant?

    /// Every filtered connection of the process, by its socket. evhttp hands the server
    /// requests, not a context of its own, and a descriptor names one connection process-wide
    /// until it is closed, which happens only after the connection's state is gone.
    nonisolated(unsafe) static var byDescriptor: [Connection?] = []

    init(base: OpaquePointer, limits: Limits, logger: Logger,
         allowedMethods: @escaping (UnsafeBufferPointer<UInt8>) -> StaticString) {
        self.base = base
        self.limits = limits
        self.logger = logger
        self.allowedMethods = allowedMethods
        let context = Unmanaged.passUnretained(self).toOpaque()
        flushEvent = event_new(base, -1, 0, { _, _, context in
            guard let context else { return }
            Unmanaged<Transport>.fromOpaque(context).takeUnretainedValue().flushPending()
        }, context)
        acceptTimer = CLibevent_evtimer_new(base, { _, _, context in
            guard let context else { return }
            Unmanaged<Transport>.fromOpaque(context).takeUnretainedValue().resumeAccepting()
        }, context)
    }

    /// Gives every connection `http` accepts from now on this transport's bufferevent.
    func install(on http: OpaquePointer) {
        evhttp_set_bevcb(http, { base, context in
            guard let base, let context else { return nil }
            return Unmanaged<Transport>.fromOpaque(context).takeUnretainedValue().makeBufferevent(base)
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Watches the listening socket's accept errors (see `acceptFailed`). The error callback
    /// gets evhttp's context, not ours, so the transport is found by its listener.
    func watch(_ bound: OpaquePointer) {
        guard let listener = evhttp_bound_socket_get_listener(bound) else { return }
        self.listener = listener
        Self.byListener[listener] = self
        evconnlistener_set_error_cb(listener) { listener, _ in
            let code = errno
            guard let listener, let transport = Transport.byListener[listener] else { return }
            transport.acceptFailed(code)
        }
    }

    nonisolated(unsafe) private static var byListener: [OpaquePointer: Transport] = [:]

    /// Stops watching the listener; the server calls it before closing the listener.
    func forgetListener() {
        if let acceptTimer { CLibevent_evtimer_del(acceptTimer) }
        if let listener { Self.byListener[listener] = nil }
        listener = nil
    }

    /// Frees the transport's own events; after evhttp is freed, before the event base.
    func releaseEvents() {
        forgetListener()
        if let flushEvent { event_free(flushEvent) }
        if let acceptTimer { event_free(acceptTimer) }
        flushEvent = nil
        acceptTimer = nil
    }

    // MARK: Connections

    private func makeBufferevent(_ base: OpaquePointer) -> OpaquePointer? {
        guard let socket = bufferevent_socket_new(base, -1, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else { return nil }
        let connection = Connection(transport: self)
        let context = Unmanaged.passRetained(connection).toOpaque()
        guard let filter = bufferevent_filter_new(socket, { source, destination, _, _, context in
            guard let source, let destination, let context else { return BEV_ERROR }
            return Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue().filterInput(source, destination)
        }, { _, _, _, _, _ in
            // The output side moves nothing: `Connection.flush` writes evhttp's output itself.
            BEV_NEED_MORE
        }, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue), { context in
            guard let context else { return }
            Unmanaged<Connection>.fromOpaque(context).takeRetainedValue().closed()
        }, context) else {
            Unmanaged<Connection>.fromOpaque(context).release()
            bufferevent_free(socket)
            return nil
        }
        connection.filter = filter
        // The socket's own write side is never used; reading stops when this much waits.
        bufferevent_disable(socket, Int16(EV_WRITE))
        bufferevent_setwatermark(socket, Int16(EV_READ), 0, limits.maxHeadBytes + Self.bufferedInputBytes)
        bufferevent_setwatermark(filter, Int16(EV_READ), 0, Self.bufferedInputBytes)
        evbuffer_add_cb(bufferevent_get_output(filter), { _, info, context in
            guard let info, let context, info.pointee.n_added > 0 else { return }
            Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue().outputAdded()
        }, Unmanaged.passUnretained(connection).toOpaque())
        stats.openConnections += 1
        if stats.openConnections > limits.maxConnections {
            connection.mustRefuse = true
            stats.refusedConnections += 1
            schedule(connection)
        }
        return filter
    }

    fileprivate func connectionClosed(_ connection: Connection) {
        stats.openConnections -= 1
    }

    fileprivate func schedule(_ connection: Connection) {
        guard !connection.isPending else { return }
        connection.isPending = true
        pending.append(connection)
        if pending.count == 1, let flushEvent { event_active(flushEvent, 0, 0) }
    }

    private func flushPending() {
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        for connection in batch {
            connection.isPending = false
            guard !connection.isClosed else { continue }
            if connection.mustRefuse {
                connection.refuse()
            } else if connection.writeFailed {
                connection.reportWriteFailure()
            } else {
                connection.flush()
            }
        }
    }

    fileprivate func countRefusedRequest() { stats.refusedRequests += 1 }
    fileprivate func countTimeout(body: Bool) {
        if body { stats.bodyTimeouts += 1 } else { stats.headerTimeouts += 1 }
    }

    /// The connection a request arrived on, if this process filters it.
    static func connection(of request: UnsafeMutablePointer<evhttp_request>) -> Connection? {
        guard let connection = evhttp_request_get_connection(request),
              let bufferevent = evhttp_connection_get_bufferevent(connection) else { return nil }
        let socket = Int(bufferevent_getfd(bufferevent))
        guard socket >= 0, socket < byDescriptor.count, let known = byDescriptor[socket], known.filter == bufferevent else { return nil }
        return known
    }

    // MARK: Accepting

    /// `accept` failed with something other than "try again": most often EMFILE or ENFILE,
    /// out of descriptors. The listening socket stays readable while connections wait, so
    /// retrying at once would spin a core; accepting pauses briefly instead, and the error is
    /// logged once per interval with how often it happened.
    private func acceptFailed(_ code: Int32) {
        stats.acceptErrors += 1
        acceptErrorsUnlogged += 1
        let now = Clock.monotonicNow()
        if lastAcceptLog.map({ now.duration(since: $0) >= Self.acceptLogInterval }) ?? true {
            lastAcceptLog = now
            logger.error("accept_failed", [
                "error": String(cString: strerror(code)), "times": acceptErrorsUnlogged,
                "open_connections": stats.openConnections,
                "action": "accepting paused for \(Self.acceptBackoff.secondsText) at a time; raise the descriptor limit (ulimit -n) or lower --max-connections",
            ])
            logger.flush()
            acceptErrorsUnlogged = 0
        }
        guard let listener, let acceptTimer else { return }
        evconnlistener_disable(listener)
        let delay = Self.acceptBackoff.timeval
        var interval = timeval(tv_sec: delay.seconds, tv_usec: delay.microseconds)
        CLibevent_evtimer_add(acceptTimer, &interval)
    }

    private func resumeAccepting() {
        if let listener { evconnlistener_enable(listener) }
    }

    fileprivate func arm(_ timer: OpaquePointer, after duration: Duration) {
        let delay = duration.timeval
        var interval = timeval(tv_sec: delay.seconds, tv_usec: delay.microseconds)
        CLibevent_evtimer_add(timer, &interval)
    }

    fileprivate var eventBase: OpaquePointer { base }
}

/// One filtered connection: its framing state, its deadline and its writer.
final class Connection {
    unowned let transport: Transport
    /// The filter bufferevent evhttp owns; nil once it is freed.
    fileprivate(set) var filter: OpaquePointer?
    private(set) var descriptor: Int32 = -1
    private var framing: RequestFraming
    /// Bytes let through to evhttp since the connection opened, poison included.
    private var passed = 0
    /// A broken rule and where its poison ends in the stream evhttp reads.
    private var rejection: (RequestFraming.Rejection, poisonEnd: Int)?
    private var timer: OpaquePointer?
    /// The phase and head the timer is armed for.
    private var timerFor: (phase: RequestFraming.Phase, head: Int) = (.idle, 0)
    /// A write failed inside a reply; evhttp hears of it from `flushPending`, outside its own
    /// call stack.
    fileprivate var writeFailed = false
    private var writeEvent: OpaquePointer?
    fileprivate var isPending = false
    fileprivate var mustRefuse = false
    /// Set while the server makes a reply (`PendingRequest.send`), which writes at once.
    fileprivate var isReplying = false
    fileprivate(set) var isClosed = false
    /// Called when everything evhttp queued has been written (set by a stream's watcher, to
    /// send the latest state it held back from a slow reader).
    var onDrained: (() -> Void)?

    private static let poison = Array("!\r\n".utf8)
    private static let writeSliceBytes = 256 * 1024

    fileprivate init(transport: Transport) {
        self.transport = transport
        framing = RequestFraming(maxHeadBytes: transport.limits.maxHeadBytes, allowedMethods: transport.allowedMethods)
    }

    private func register() {
        guard descriptor < 0, let filter else { return }
        descriptor = bufferevent_getfd(filter)
        guard descriptor >= 0 else { return }
        let index = Int(descriptor)
        if index >= Transport.byDescriptor.count {
            Transport.byDescriptor.append(contentsOf: repeatElement(nil, count: max(index + 1, Transport.byDescriptor.count * 2) - Transport.byDescriptor.count))
        }
        Transport.byDescriptor[index] = self
    }

    /// evhttp freed the connection (libevent finalized its filter).
    fileprivate func closed() {
        isClosed = true
        onDrained = nil
        if descriptor >= 0, Int(descriptor) < Transport.byDescriptor.count, Transport.byDescriptor[Int(descriptor)] === self {
            Transport.byDescriptor[Int(descriptor)] = nil
        }
        if let timer { event_free(timer) }
        if let writeEvent { event_free(writeEvent) }
        timer = nil
        writeEvent = nil
        filter = nil
        transport.connectionClosed(self)
    }

    // MARK: Input

    fileprivate func filterInput(_ source: OpaquePointer, _ destination: OpaquePointer) -> bufferevent_filter_result {
        register()
        if mustRefuse {
            evbuffer_drain(source, evbuffer_get_length(source))
            return BEV_NEED_MORE
        }
        var movedAny = false
        while true {
            let waiting = evbuffer_get_length(source)
            var visible = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
            if framing.needsBytes, waiting > 0 {
                // A head is scanned in one piece: at most the head limit and its line end.
                let count = min(waiting, transport.limits.maxHeadBytes + 3)
                if let start = evbuffer_pullup(source, count) { visible = UnsafeBufferPointer(start: start, count: count) }
            }
            let step = framing.next(waiting: waiting, visible: visible)
            switch step {
            case .wait:
                updateDeadline()
                return movedAny ? BEV_OK : BEV_NEED_MORE
            case .pass(let count):
                evbuffer_remove_buffer(source, destination, count)
                passed += count
                movedAny = true
            case .discard(let count):
                evbuffer_drain(source, count)
            case .reject(let count, let broken):
                if count > 0 {
                    evbuffer_remove_buffer(source, destination, count)
                    passed += count
                }
                Self.poison.withUnsafeBytes { _ = evbuffer_add(destination, $0.baseAddress, $0.count) }
                passed += Self.poison.count
                rejection = (broken, passed)
                transport.countRefusedRequest()
                movedAny = true
            }
        }
    }

    /// The rule broken by the request evhttp is refusing now, if its refusal is the poison:
    /// evhttp has read through it. Any other error evhttp finds (an oversized body) is its own.
    func rejectionBeingAnswered() -> RequestFraming.Rejection? {
        guard let (broken, end) = rejection, let filter,
              passed - evbuffer_get_length(bufferevent_get_input(filter)) >= end else { return nil }
        return broken
    }

    /// Arms the deadline of the phase the connection is in, when that phase changed.
    private func updateDeadline() {
        let phase = framing.phase
        let deadline: Duration?
        switch phase {
        case .head: deadline = transport.limits.headerTimeout
        case .body: deadline = transport.limits.bodyTimeout
        case .idle, .rejected: deadline = nil
        }
        switch (timerFor.phase, phase) {
        case (.head, .head) where timerFor.head == framing.heads: return
        case (.body, .body) where timerFor.head == framing.heads: return
        default: break
        }
        timerFor = (phase, framing.heads)
        guard let deadline else {
            if let timer { CLibevent_evtimer_del(timer) }
            return
        }
        if timer == nil {
            timer = CLibevent_evtimer_new(transport.eventBase, { _, _, context in
                guard let context else { return }
                Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue().deadlinePassed()
            }, Unmanaged.passUnretained(self).toOpaque())
        }
        if let timer { transport.arm(timer, after: deadline) }
    }

    private func deadlinePassed() {
        guard let filter, !isClosed else { return }
        let body: Bool
        switch framing.phase {
        case .head: body = false
        case .body: body = true
        case .idle, .rejected: return
        }
        let limit = body ? transport.limits.bodyTimeout : transport.limits.headerTimeout
        // evhttp is busy with an earlier request (or still writing its answer): the client is
        // not the one keeping it waiting.
        if bufferevent_get_enabled(filter) & Int16(EV_READ) == 0 || evbuffer_get_length(bufferevent_get_output(filter)) > 0 {
            if let timer { transport.arm(timer, after: limit) }
            return
        }
        transport.countTimeout(body: body)
        let what = body ? "request body" : "request line and headers"
        let flag = body ? "--body-timeout" : "--header-timeout"
        sendDirectly(status: 408, reason: "Request Timeout",
                     message: "the \(what) did not arrive within \(limit.secondsText) (\(flag)); the connection is closed")
        bufferevent_trigger_event(filter, Int16(BEV_EVENT_READING | BEV_EVENT_ERROR), 0)
    }

    /// One over the connection limit: told so, and closed.
    fileprivate func refuse() {
        register()
        guard let filter else { return }
        sendDirectly(status: 503, reason: "Service Unavailable", retryAfter: true,
                     message: "the registry is at its connection limit (--max-connections \(transport.limits.maxConnections)); retry shortly")
        bufferevent_trigger_event(filter, Int16(BEV_EVENT_READING | BEV_EVENT_ERROR), 0)
    }

    /// A whole answer written straight to the socket, for when no request of evhttp's is in
    /// flight: it cannot interleave with one. Best effort: the connection closes next.
    private func sendDirectly(status: Int, reason: String, retryAfter: Bool = false, message: String) {
        guard descriptor >= 0 else { return }
        let body = Response.errorBody(message)
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        if retryAfter { head += "Retry-After: 1\r\n" }
        head += "Connection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
    }

    // MARK: Output

    /// evhttp added to the output outside a reply the server is making (an error reply, a
    /// stream's chunk, `100 Continue`): written before the loop next polls.
    fileprivate func outputAdded() {
        if !isReplying { transport.schedule(self) }
    }

    /// Brackets `evhttp_send_reply`: the reply is written by `flush()` right after.
    func beginReply() { isReplying = true }

    func endReply() {
        isReplying = false
        flush()
    }

    /// Writes evhttp's output to the socket, as much as it takes. Once all of it is written,
    /// evhttp's write callback runs, as the socket's bufferevent would run it: evhttp then
    /// finishes the request and reads the next one, or closes the connection. Nothing may
    /// touch the connection's request after this. What the socket does not take waits for a
    /// write event; a write error is reported to evhttp as the socket's bufferevent would.
    func flush() {
        register()
        guard let filter, !isClosed, bufferevent_get_enabled(filter) & Int16(EV_WRITE) != 0 else { return }
        let output = bufferevent_get_output(filter)
        if evbuffer_get_length(output) > 0 {
            // At most a slice per call: a client whose socket takes megabytes at once (a
            // 13 MB discover) would otherwise hold the loop for the whole copy; what is left
            // goes out when the socket is next writable, after other clients had their turn.
            let written = evbuffer_write_atmost(output, descriptor, Self.writeSliceBytes)
            if written < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                    waitForWritable()
                } else {
                    writeFailed = true
                    transport.schedule(self)
                }
                return
            }
            if evbuffer_get_length(output) > 0 {
                // Progress: evhttp's timeouts start over, as a socket bufferevent's would.
                let idle = transport.limits.idleTimeout.timeval
                var timeout = timeval(tv_sec: idle.seconds, tv_usec: idle.microseconds)
                bufferevent_set_timeouts(filter, &timeout, &timeout)
                waitForWritable()
                return
            }
        }
        bufferevent_trigger(filter, Int16(EV_WRITE), 0)
        onDrained?()
    }

    /// Bytes evhttp queued that the socket has not taken yet: what a slow reader holds.
    var pendingOutputBytes: Int {
        guard let filter, !isClosed else { return 0 }
        return evbuffer_get_length(bufferevent_get_output(filter))
    }

    /// Tells evhttp the socket refused a write, as the socket's bufferevent would: evhttp
    /// then frees the connection.
    fileprivate func reportWriteFailure() {
        guard let filter else { return }
        bufferevent_trigger_event(filter, Int16(BEV_EVENT_WRITING | BEV_EVENT_ERROR), 0)
    }

    private func waitForWritable() {
        if writeEvent == nil {
            writeEvent = event_new(transport.eventBase, descriptor, Int16(EV_WRITE), { _, _, context in
                guard let context else { return }
                Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue().flush()
            }, Unmanaged.passUnretained(self).toOpaque())
        }
        if let writeEvent { event_add(writeEvent, nil) }
    }
}
