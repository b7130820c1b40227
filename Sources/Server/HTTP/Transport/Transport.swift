#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Registry
import TLS
import HTTPParsing

/// Everything the server does beneath evhttp, for one listener: with `Connection`,
/// `RequestFraming` and `LibeventErrorReply` in this folder, the one place where the
/// registry reaches past evhttp's public behaviour.
///
/// evhttp 2.1 has no hook for raw request bytes, header deadlines or connection counts.
/// `evhttp_set_bevcb` lets the server make each connection's socket bufferevent, and the
/// transport hooks it before evhttp uses it:
///
/// - **Input**: a callback on the bufferevent's input buffer runs inside libevent's read,
///   before evhttp's read callback. It takes the new bytes aside, lets `RequestFraming` check
///   them, and puts back only what follows the framing rules; a head not yet complete waits
///   in a buffer of the connection's own until the rest arrives. A broken rule becomes a
///   one-line poison (`!`) that evhttp refuses in order, after the requests before it; the
///   refusal is rendered from the rule that was broken (`LibeventErrorReply`). (The first
///   version put a filter bufferevent over the socket's; that cost every connection a second
///   bufferevent, two evbuffers and their callbacks, 1.1 KB, and held parked watchers above
///   4 KiB each.)
/// - **Deadlines**: a head must arrive within `headerTimeout` of its first byte, a body within
///   `bodyTimeout` of its head (evhttp's own timeout restarts with every byte, which a client
///   sending one byte a second never lets expire). They count only while evhttp is waiting
///   for the request, not while it is busy with an earlier one.
/// - **Output**: the transport writes evhttp's output to the socket at once when a reply is
///   made (which saves evhttp's extra loop turn; the write interest evhttp adds and drops in
///   the same turn never reaches the kernel, see `EventLoop`), and runs evhttp's write
///   callback once the socket has taken all of it, as the bufferevent itself would. What the
///   socket does not take is finished by the bufferevent's own write event or the
///   transport's, whichever comes first, a slice at a time.
/// - **Closing**: evhttp's close callback of each connection belongs to the transport
///   (`Connection.adopt`); a holder of the connection's request is told through
///   `Connection.onClose`.
/// - **Connections**: counted exactly, capped at `maxConnections` (one over the cap is told
///   `503` and closed), and the listener backs off when the process runs out of descriptors
///   instead of spinning on `accept`.
///
/// - **Held requests**: a long-poll or stream has reads turned off by evhttp; `HeldWatch`
///   watches its socket so that a client that leaves is noticed at once.
///
/// `Mode.filtered` is all of the above. `Mode.tls` makes each connection's bufferevent a
/// `bufferevent_openssl` over the socket (`evhttp_set_bevcb` applies to a whole evhttp
/// object, so each listener has its own object and transport): the input check, deadlines,
/// the connection cap, close callbacks, held-request watches and the output budget work on
/// the decrypted bytes as above, but nothing is written to the socket except by OpenSSL. A
/// reply is still written at once, as one TLS record, through the connection's own OpenSSL
/// session (`TLSServerContext.writeNow`); anything else evhttp queues (a stream's events, a
/// reply the socket would not take) the bufferevent writes itself. A connection refused over
/// the cap or past a deadline is closed without the plain-text 503 or 408 that the filtered
/// mode writes straight to the socket. `Mode.plain` installs nothing, and
/// evhttp's own bufferevents do all reading and writing.
final class Transport {
    enum Mode {
        case filtered
        case plain
        case tls
    }

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
        /// Connections closed because answers waiting for slow readers passed `--max-output-bytes`.
        var shedConnections: UInt64 = 0
        /// The transport's own writes of evhttp's output: the socket took all of it, or not.
        var completeWrites: UInt64 = 0
        var partialWrites: UInt64 = 0

        /// Two listeners' figures together.
        static func + (lhs: Stats, rhs: Stats) -> Stats {
            Stats(openConnections: lhs.openConnections + rhs.openConnections,
                  refusedConnections: lhs.refusedConnections + rhs.refusedConnections, acceptErrors: lhs.acceptErrors + rhs.acceptErrors,
                  refusedRequests: lhs.refusedRequests + rhs.refusedRequests, headerTimeouts: lhs.headerTimeouts + rhs.headerTimeouts,
                  bodyTimeouts: lhs.bodyTimeouts + rhs.bodyTimeouts, shedConnections: lhs.shedConnections + rhs.shedConnections,
                  completeWrites: lhs.completeWrites + rhs.completeWrites, partialWrites: lhs.partialWrites + rhs.partialWrites)
        }
    }

    /// What evhttp may have waiting of a connection's requests, beyond one head: enough
    /// for any one head, small enough that a client that sends without reading the answers
    /// holds a bounded amount.
    private static let bufferedInputBytes = 64 * 1024
    private static let acceptBackoff: Duration = .milliseconds(100)
    private static let acceptLogInterval: Duration = .seconds(10)

    let mode: Mode
    /// The TLS listener's certificates, swapped by a reload (connections keep the context
    /// they began with).
    var tls: TLSServerContext?
    /// Whether evhttp's output is written to the socket as a reply is made (not through TLS).
    let writesAtOnce: Bool
    let limits: Limits
    private(set) var stats = Stats()
    private let base: OpaquePointer
    private let logger: Logger
    let allowedMethods: (UnsafeBufferPointer<UInt8>) -> String
    private var flushTimer: LoopTimer?
    /// Connections whose output evhttp added to outside a reply the server is making, or that
    /// must be refused: handled by `flushEvent` before the loop next polls.
    private var pending: [Connection] = []
    private var listener: OpaquePointer?
    private var acceptTimer: LoopTimer?
    private var acceptErrorsUnlogged = 0
    private var lastAcceptLog: Instant?
    /// Connections whose socket has not taken all of their output, by identity.
    private var stuck: [ObjectIdentifier: Connection] = [:]
    private var shedTimer: LoopTimer?
    private var shedLog = LogThrottle()
    /// A connection is shed only once it has been stuck this long: a client reading a large
    /// answer at full speed is behind for milliseconds, not seconds.
    static let shedAfter: Duration = .seconds(1)

    /// Every filtered connection of the process, by its socket. evhttp hands the server
    /// requests, not a context of its own, and a descriptor names one connection process-wide
    /// until it is closed, which happens only after the connection's state is gone.
    nonisolated(unsafe) static var byDescriptor: [Connection?] = []

    init(mode: Mode, loop: EventLoop, limits: Limits, logger: Logger,
         allowedMethods: @escaping (UnsafeBufferPointer<UInt8>) -> String) {
        self.mode = mode
        writesAtOnce = mode == .filtered
        self.base = loop.base
        self.limits = limits
        self.logger = logger
        self.allowedMethods = allowedMethods
        flushTimer = loop.timer { [unowned self] in flushPending() }
        acceptTimer = loop.timer { [unowned self] in resumeAccepting() }
        shedTimer = loop.timer { [unowned self] in shed() }
        OutputMemory.overBudget.append { [unowned self] in shedTimer?.activate() }
    }

    func noteStuck(_ connection: Connection, _ isStuck: Bool) {
        if isStuck {
            connection.stuckSince = Clock.monotonicNow()
            stuck[ObjectIdentifier(connection)] = connection
        } else {
            connection.stuckSince = nil
            stuck[ObjectIdentifier(connection)] = nil
        }
    }

    /// Over `--max-output-bytes`: closes the connections stuck longest (at least `shedAfter`)
    /// until what they hold, by their own output, would bring the total under 90 % of it.
    /// While the total stays over and younger stuck connections remain, it looks again once
    /// the oldest of them is old enough.
    private func shed() {
        let now = Clock.monotonicNow()
        var excess = OutputMemory.total - OutputMemory.budget / 10 * 9
        guard excess > 0 else {
            OutputMemory.shed()
            return
        }
        let ordered = stuck.values.compactMap { connection in connection.stuckSince.map { (connection, $0) } }
            .sorted { $0.1.nanoseconds < $1.1.nanoseconds }
        var closed = 0
        var retryAt: Instant?
        for (connection, since) in ordered where excess > 0 {
            guard now.duration(since: since) >= Self.shedAfter else {
                retryAt = since + Self.shedAfter
                break
            }
            excess -= connection.pendingOutputBytes
            noteStuck(connection, false)
            connection.abort()
            closed += 1
        }
        stats.shedConnections += UInt64(closed)
        if closed > 0, let suppressed = shedLog.admit(now: now) {
            logger.warn("output_budget_exceeded", [
                "held_bytes": OutputMemory.total, "budget": OutputMemory.budget, "closed_connections": closed,
                "times_not_logged": suppressed,
                "note": "clients that stopped reading answers made for them alone were disconnected; raise --max-output-bytes if they are legitimate",
            ])
        }
        if excess > 0, let retryAt {
            shedTimer?.schedule(after: max(.milliseconds(10), retryAt.duration(since: now)))
        } else {
            OutputMemory.shed()
        }
    }

    /// In filtered and TLS mode, gives every connection `http` accepts from now on this
    /// transport's bufferevent.
    func install(on http: OpaquePointer) {
        guard mode != .plain else { return }
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
        acceptTimer?.cancel()
        if let listener { Self.byListener[listener] = nil }
        listener = nil
    }

    // MARK: Connections

    private func makeBufferevent(_ base: OpaquePointer) -> OpaquePointer? {
        let made = mode == .tls ? tls?.acceptingBufferevent(base) : bufferevent_socket_new(base, -1, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))
        guard let socket = made else { return nil }
        let connection = Connection(transport: self)
        // Held until evhttp frees the connection, then released a loop step later (`retire`).
        _ = Unmanaged.passRetained(connection)
        connection.socketEvents = socket
        let context = Unmanaged.passUnretained(connection).toOpaque()
        // Reading stops when this much waits for evhttp.
        bufferevent_setwatermark(socket, Int16(EV_READ), 0, limits.maxHeadBytes + Self.bufferedInputBytes)
        connection.inputEntry = evbuffer_add_cb(bufferevent_get_input(socket), { _, info, context in
            guard let info, let context, info.pointee.n_added > 0 else { return }
            let connection = Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue()
            withExtendedLifetime(connection) { connection.inputArrived(info.pointee.n_added) }
        }, context)
        connection.outputEntry = evbuffer_add_cb(bufferevent_get_output(socket), { buffer, info, context in
            guard let info, let context else { return }
            let connection = Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue()
            if info.pointee.n_added > 0 {
                connection.outputAdded()
            } else if info.pointee.n_deleted > 0, evbuffer_get_length(buffer) == 0 {
                connection.outputDrained()
            }
        }, context)
        // Until `Connection.adopt` has evhttp's connection (see there).
        bufferevent_incref(socket)
        stats.openConnections += 1
        if stats.openConnections > limits.maxConnections {
            connection.mustRefuse = true
            stats.refusedConnections += 1
        }
        // evhttp makes its connection object right after this returns: `adopt` finds it.
        schedule(connection)
        return socket
    }

    /// Bytes on their way between a connection's input and the framing (`Connection.inputArrived`):
    /// one pair for the process, since one callback runs at a time.
    nonisolated(unsafe) static let staging: OpaquePointer = evbuffer_new()!
    nonisolated(unsafe) static let scratch: OpaquePointer = evbuffer_new()!

    /// Connections evhttp has freed, released on the next loop step (not inside evhttp's
    /// own call stack, which may still be in one of their methods).
    private var retired: [Connection] = []

    func retire(_ connection: Connection) {
        retired.append(connection)
        flushTimer?.activate()
    }

    func connectionClosed(_ connection: Connection) {
        stats.openConnections -= 1
        retire(connection)
    }

    func schedule(_ connection: Connection) {
        guard !connection.isPending else { return }
        connection.isPending = true
        pending.append(connection)
        if pending.count == 1 { flushTimer?.activate() }
    }

    private func flushPending() {
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        let released = retired
        retired.removeAll(keepingCapacity: true)
        for connection in released { Unmanaged.passUnretained(connection).release() }
        for connection in batch {
            connection.isPending = false
            guard !connection.isClosed else { continue }
            connection.adopt()
            if connection.mustRefuse {
                connection.refuse()
            } else if connection.writeFailed {
                connection.reportWriteFailure()
            } else {
                connection.flush()
            }
        }
    }

    func countRefusedRequest() { stats.refusedRequests += 1 }
    func countWrite(complete: Bool) {
        if complete { stats.completeWrites += 1 } else { stats.partialWrites += 1 }
    }
    func countTimeout(body: Bool) {
        if body { stats.bodyTimeouts += 1 } else { stats.headerTimeouts += 1 }
    }

    /// The connection a request arrived on, if this process filters it.
    static func connection(of request: UnsafeMutablePointer<evhttp_request>) -> Connection? {
        guard let connection = evhttp_request_get_connection(request),
              let bufferevent = evhttp_connection_get_bufferevent(connection) else { return nil }
        let socket = Int(bufferevent_getfd(bufferevent))
        guard socket >= 0, socket < byDescriptor.count, let known = byDescriptor[socket], known.socketEvents == bufferevent else { return nil }
        return known
    }

    /// Calls `handler` (once) when evhttp frees the connection `request` arrived on, or stops
    /// calling it (nil). A filtered connection's close callback belongs to its `Connection`,
    /// which passes it on; a plain one's is set here.
    static func onClose(of request: UnsafeMutablePointer<evhttp_request>, _ handler: (() -> Void)?) {
        if let filtered = connection(of: request) {
            filtered.onClose = handler
            return
        }
        guard let evcon = evhttp_request_get_connection(request) else { return }
        plainCloseHandlers[evcon] = handler
        evhttp_connection_set_closecb(evcon, handler == nil ? nil : { evcon, _ in
            guard let evcon, let handler = Transport.plainCloseHandlers.removeValue(forKey: evcon) else { return }
            handler()
        }, nil)
    }

    nonisolated(unsafe) private static var plainCloseHandlers: [OpaquePointer: () -> Void] = [:]

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
            acceptErrorsUnlogged = 0
        }
        guard let listener else { return }
        evconnlistener_disable(listener)
        acceptTimer?.schedule(after: Self.acceptBackoff)
    }

    private func resumeAccepting() {
        if let listener { evconnlistener_enable(listener) }
    }

    func arm(_ timer: OpaquePointer, after duration: Duration) {
        let delay = duration.timeval
        var interval = timeval(tv_sec: delay.seconds, tv_usec: delay.microseconds)
        CLibevent_evtimer_add(timer, &interval)
    }

    var eventBase: OpaquePointer { base }

    // MARK: Held requests

    /// Requests evhttp answered itself (the interposed `evhttp_send_error`, which has no
    /// context of ours), by status: the framing refusals, oversized bodies, unparsable heads.
    nonisolated(unsafe) static var answeredByLibevent: [Int32: UInt64] = [:]

    /// Caps a held stream's socket send buffer, so that a client that stops reading holds
    /// about one event in the kernel and the watcher's coalescing takes over.
    static func limitSendBuffer(of request: UnsafeMutablePointer<evhttp_request>, to bytes: Int32) {
        guard let connection = evhttp_request_get_connection(request) else { return }
        var value = bytes
        setsockopt(bufferevent_getfd(evhttp_connection_get_bufferevent(connection)), SOL_SOCKET, SO_SNDBUF, &value,
                   socklen_t(MemoryLayout<Int32>.size))
    }

    /// Watches a held request's socket, which evhttp stops reading while a request is
    /// unanswered: readable with nothing to read is the client closing (`MSG_PEEK` sees 0
    /// bytes); data is its next request, which evhttp reads once this one is answered.
    /// Either way, and when `timeout` passes, `ended` is called (once); the holder then
    /// answers the request, which cancels the watch.
    final class HeldWatch {
        /// Why the watch ended.
        enum Ending {
            /// Its time-out passed.
            case timedOut
            /// The client closed the connection (or it failed).
            case clientClosed
            /// The client sent more bytes: a next request, which evhttp can read only once
            /// the held one is answered.
            case clientSentMore
        }

        private var event: OpaquePointer?
        private let ended: (Ending) -> Void

        init?(_ request: UnsafeMutablePointer<evhttp_request>, timeout: Duration?, ended: @escaping (Ending) -> Void) {
            self.ended = ended
            guard let connection = evhttp_request_get_connection(request),
                  let bufferevent = evhttp_connection_get_bufferevent(connection),
                  let base = bufferevent_get_base(bufferevent) else { return nil }
            let socket = bufferevent_getfd(bufferevent)
            // Persistent, so that a wake-up with nothing to read leaves the watch in place.
            event = event_new(base, socket, Int16(EV_READ | EV_PERSIST), { socket, what, context in
                guard let context else { return }
                let watch = Unmanaged<HeldWatch>.fromOpaque(context).takeUnretainedValue()
                withExtendedLifetime(watch) { watch.fired(socket: socket, timedOut: what & Int16(EV_TIMEOUT) != 0) }
            }, Unmanaged.passUnretained(self).toOpaque())
            if let timeout {
                let value = timeout.timeval
                var interval = timeval(tv_sec: value.seconds, tv_usec: value.microseconds)
                event_add(event, &interval)
            } else {
                event_add(event, nil)
            }
        }

        private func fired(socket: Int32, timedOut: Bool) {
            var ending = Ending.timedOut
            if !timedOut {
                var byte: UInt8 = 0
                let peeked = recv(socket, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
                if peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
                ending = peeked > 0 ? .clientSentMore : .clientClosed
            }
            cancel()
            ended(ending)
        }

        func cancel() {
            if let event { event_free(event) }
            event = nil
        }

        deinit { cancel() }
    }
}
