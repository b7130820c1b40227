#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Registry
import TLS
import HTTPParsing

/// One filtered connection: its framing state, its deadline and its writer.
final class Connection {
    unowned let transport: Transport
    /// The socket's bufferevent evhttp owns; nil once evhttp has freed the connection.
    var socketEvents: OpaquePointer?
    /// Bytes read from the socket that the framing has not let through yet (a head not
    /// complete): made when needed, freed once empty.
    private var held: OpaquePointer?
    private(set) var isAdopted = false
    var inputEntry: OpaquePointer?
    var outputEntry: OpaquePointer?
    /// Set while the transport moves bytes in the input buffer itself: the buffer's
    /// callbacks, which it triggers, are then the transport's own doing.
    private var moving = false
    /// Called (once) when evhttp frees the connection: a stream's or long-poll's holder.
    var onClose: (() -> Void)?
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
    var writeFailed = false
    private var writeEvent: OpaquePointer?
    var isPending = false
    var mustRefuse = false
    /// Set while the server makes a reply (`PendingRequest.send`), which writes at once.
    var isReplying = false
    var isClosed = false
    /// Called when everything evhttp queued has been written (set by a stream's watcher, to
    /// send the latest state it held back from a slow reader).
    var onDrained: (() -> Void)?
    /// Since when the socket has not taken all of the output (nil while it keeps up).
    var stuckSince: Instant?

    private static let poison = Array("!\r\n".utf8)
    private static let writeSliceBytes = 256 * 1024
    /// A TLS record's largest payload: smaller output is made one piece before OpenSSL writes it.
    private static let coalescedRecordBytes = 16 * 1024

    init(transport: Transport) {
        self.transport = transport
        framing = RequestFraming(maxHeadBytes: transport.limits.maxHeadBytes, allowedMethods: transport.allowedMethods)
    }

    private func register() {
        guard descriptor < 0, let socketEvents else { return }
        descriptor = bufferevent_getfd(socketEvents)
        guard descriptor >= 0 else { return }
        let index = Int(descriptor)
        if index >= Transport.byDescriptor.count {
            Transport.byDescriptor.append(contentsOf: repeatElement(nil, count: max(index + 1, Transport.byDescriptor.count * 2) - Transport.byDescriptor.count))
        }
        Transport.byDescriptor[index] = self
    }

    /// Learns evhttp's connection for this bufferevent (it is made right after the
    /// bufferevent, so this runs on the next step of the loop, before anything is read) and
    /// asks evhttp to say when it frees it.
    func adopt() {
        guard !isAdopted, let socketEvents else { return }
        isAdopted = true
        // The transport holds a reference from `makeBufferevent` to here: evhttp may have
        // freed the connection already (it does when setting it up fails), and freeing a
        // bufferevent clears its callbacks.
        defer { bufferevent_decref(socketEvents) }
        var argument: UnsafeMutableRawPointer?
        bufferevent_getcb(socketEvents, nil, nil, nil, &argument)
        guard let argument else {
            closed()
            return
        }
        evhttp_connection_set_closecb(OpaquePointer(argument), { _, context in
            guard let context else { return }
            Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue().closed()
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// evhttp is freeing the connection (its close callback).
    func closed() {
        guard !isClosed else { return }
        isClosed = true
        onDrained = nil
        let notify = onClose
        onClose = nil
        notify?()
        if let socketEvents {
            if let inputEntry { evbuffer_remove_cb_entry(bufferevent_get_input(socketEvents), inputEntry) }
            if let outputEntry { evbuffer_remove_cb_entry(bufferevent_get_output(socketEvents), outputEntry) }
        }
        inputEntry = nil
        outputEntry = nil
        if let held { evbuffer_free(held) }
        held = nil
        if stuckSince != nil { transport.noteStuck(self, false) }
        if descriptor >= 0, Int(descriptor) < Transport.byDescriptor.count, Transport.byDescriptor[Int(descriptor)] === self {
            Transport.byDescriptor[Int(descriptor)] = nil
        }
        if let timer { event_free(timer) }
        if let writeEvent { event_free(writeEvent) }
        timer = nil
        writeEvent = nil
        socketEvents = nil
        transport.connectionClosed(self)
    }

    // MARK: Input

    /// libevent read from the socket into the input buffer (this runs inside that read,
    /// before evhttp's read callback): the new bytes join those held back, and the framing
    /// lets through what it has checked. evhttp never sees a byte the framing has not passed.
    func inputArrived(_ added: Int) {
        guard !moving, let socketEvents, let input = bufferevent_get_input(socketEvents) else { return }
        moving = true
        defer { moving = false }
        let total = evbuffer_get_length(input)
        let given = total - added
        let source: OpaquePointer
        if let held {
            source = held
        } else {
            source = Transport.staging
        }
        if given > 0 {
            // Bytes passed earlier that evhttp has not read yet stay first in the input.
            let scratch = Transport.scratch
            evbuffer_remove_buffer(input, scratch, given)
            evbuffer_add_buffer(source, input)
            evbuffer_add_buffer(input, scratch)
        } else {
            evbuffer_add_buffer(source, input)
        }
        frame(from: source, into: input)
        if source == Transport.staging, evbuffer_get_length(source) > 0 {
            guard let kept = evbuffer_new() else {
                // Out of memory: the bytes cannot be kept, so the connection cannot go on.
                evbuffer_drain(source, evbuffer_get_length(source))
                mustRefuse = true
                transport.schedule(self)
                return
            }
            evbuffer_add_buffer(kept, source)
            held = kept
        } else if let held, evbuffer_get_length(held) == 0 {
            evbuffer_free(held)
            self.held = nil
        }
    }

    /// Moves from `source` to `destination` what the framing lets through, drops what it
    /// discards, and leaves what it waits on.
    private func frame(from source: OpaquePointer, into destination: OpaquePointer) {
        register()
        if mustRefuse {
            evbuffer_drain(source, evbuffer_get_length(source))
            return
        }
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
                return
            case .pass(let count):
                evbuffer_remove_buffer(source, destination, count)
                passed += count
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
            }
        }
    }

    /// The rule broken by the request evhttp is refusing now, if its refusal is the poison:
    /// evhttp has read through it. Any other error evhttp finds (an oversized body) is its own.
    func rejectionBeingAnswered() -> RequestFraming.Rejection? {
        guard let (broken, end) = rejection, let socketEvents,
              passed - evbuffer_get_length(bufferevent_get_input(socketEvents)) >= end else { return nil }
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
        guard let socketEvents, !isClosed else { return }
        let body: Bool
        switch framing.phase {
        case .head: body = false
        case .body: body = true
        case .idle, .rejected: return
        }
        let limit = body ? transport.limits.bodyTimeout : transport.limits.headerTimeout
        // evhttp is busy with an earlier request (or still writing its answer): the client is
        // not the one keeping it waiting.
        if bufferevent_get_enabled(socketEvents) & Int16(EV_READ) == 0 || evbuffer_get_length(bufferevent_get_output(socketEvents)) > 0 {
            if let timer { transport.arm(timer, after: limit) }
            return
        }
        transport.countTimeout(body: body)
        let what = body ? "request body" : "request line and headers"
        let flag = body ? "--body-timeout" : "--header-timeout"
        sendDirectly(status: 408, reason: "Request Timeout",
                     message: "the \(what) did not arrive within \(limit.secondsText) (\(flag)); the connection is closed")
        bufferevent_trigger_event(socketEvents, Int16(BEV_EVENT_READING | BEV_EVENT_ERROR), 0)
    }

    /// One over the connection limit: told so, and closed.
    func refuse() {
        register()
        guard let socketEvents else { return }
        sendDirectly(status: 503, reason: "Service Unavailable", retryAfter: true,
                     message: "the registry is at its connection limit (--max-connections \(transport.limits.maxConnections)); retry shortly")
        bufferevent_trigger_event(socketEvents, Int16(BEV_EVENT_READING | BEV_EVENT_ERROR), 0)
    }

    /// A whole answer written straight to the socket, for when no request of evhttp's is in
    /// flight: it cannot interleave with one. Best effort: the connection closes next. Not
    /// on TLS, whose bytes only OpenSSL writes: that connection just closes.
    private func sendDirectly(status: Int, reason: String, retryAfter: Bool = false, message: String) {
        guard descriptor >= 0, transport.writesAtOnce else { return }
        let body = Response.errorBody(message)
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        if retryAfter { head += "Retry-After: 1\r\n" }
        head += "Connection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        AccessLog.current?.answeredDirectly(status: status, bytes: body.count, socket: descriptor)
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
    }

    // MARK: Output

    /// evhttp added to the output outside a reply the server is making (an error reply, a
    /// stream's chunk, `100 Continue`): written before the loop next polls.
    func outputAdded() {
        guard transport.writesAtOnce else {
            // The TLS bufferevent writes on its own: the output counts as waiting until it
            // has (a reply being made is written at once by `endReply`, or marked there).
            if !isReplying, stuckSince == nil { transport.noteStuck(self, true) }
            return
        }
        if !isReplying { transport.schedule(self) }
    }

    /// The output is empty: written by `flush` or by the bufferevent's own write event,
    /// whichever the socket let through first. A stream's holder learns it on the next step.
    func outputDrained() {
        guard stuckSince != nil else { return }
        transport.noteStuck(self, false)
        if onDrained != nil { transport.schedule(self) }
    }

    /// The names of the client certificate on a TLS connection (CN, DNS and URI names), read
    /// once, after the handshake, the first time a request needs them.
    var certificateNames: [String] {
        if let known = peerNames { return known }
        guard transport.mode == .tls, let socketEvents else { return [] }
        let names = TLSServerContext.peerNames(socketEvents)
        peerNames = names
        return names
    }
    private var peerNames: [String]?
    /// The caller of the token this connection sent last (`AccessControl.caller`); made on
    /// first use, with an ACL file.
    lazy var tokenMemo = TokenMemo()

    /// Brackets `evhttp_send_reply`: the reply is written by `flush()` right after.
    func beginReply() { isReplying = true }

    func endReply() {
        isReplying = false
        if transport.writesAtOnce { flush() } else { writeReplyThroughTLS() }
    }

    /// A TLS reply (at most a record's worth), written at once as one record through the
    /// connection's own OpenSSL session, which saves the loop turn the bufferevent's write
    /// event would take; then evhttp's write callback runs, as the bufferevent would run it.
    /// A larger reply, or one the socket does not take now, is the bufferevent's to write.
    private func writeReplyThroughTLS() {
        guard let socketEvents, !isClosed else { return }
        let output = bufferevent_get_output(socketEvents)
        let length = evbuffer_get_length(output)
        guard length > 0 else { return }
        if length <= Self.coalescedRecordBytes, let bytes = evbuffer_pullup(output, -1),
           TLSServerContext.writeNow(socketEvents, bytes, count: length) {
            evbuffer_drain(output, length)
            transport.countWrite(complete: true)
            bufferevent_trigger(socketEvents, Int16(EV_WRITE), 0)
        } else if stuckSince == nil {
            transport.noteStuck(self, true)
        }
    }

    /// Writes evhttp's output to the socket, as much as it takes. Once all of it is written,
    /// evhttp's write callback runs, as the socket's bufferevent would run it: evhttp then
    /// finishes the request and reads the next one, or closes the connection. Nothing may
    /// touch the connection's request after this. What the socket does not take waits for a
    /// write event; a write error is reported to evhttp as the socket's bufferevent would.
    func flush() {
        register()
        guard let socketEvents, !isClosed else { return }
        guard transport.writesAtOnce else {
            // TLS: the bufferevent writes (and runs evhttp's write callback) itself; a
            // stream's holder hears when it has written everything.
            if evbuffer_get_length(bufferevent_get_output(socketEvents)) == 0 { onDrained?() }
            return
        }
        guard bufferevent_get_enabled(socketEvents) & Int16(EV_WRITE) != 0 else { return }
        let output = bufferevent_get_output(socketEvents)
        if evbuffer_get_length(output) > 0 {
            // At most a slice per call: a client whose socket takes megabytes at once (a
            // 13 MB discover) would otherwise hold the loop for the whole copy; what is left
            // goes out when the socket is next writable, after other clients had their turn.
            // A socket bufferevent keeps the front of its output frozen except while it
            // writes itself; this write is the bufferevent's own, done sooner.
            evbuffer_unfreeze(output, 1)
            let written = evbuffer_write_atmost(output, descriptor, Self.writeSliceBytes)
            let code = errno
            evbuffer_freeze(output, 1)
            transport.countWrite(complete: written >= 0 && evbuffer_get_length(output) == 0)
            if written < 0 {
                if code == EAGAIN || code == EWOULDBLOCK || code == EINTR {
                    if stuckSince == nil { transport.noteStuck(self, true) }
                    waitForWritable()
                } else {
                    writeFailed = true
                    transport.schedule(self)
                }
                return
            }
            if evbuffer_get_length(output) > 0 {
                if stuckSince == nil { transport.noteStuck(self, true) }
                // Progress: evhttp's timeouts start over, as a socket bufferevent's would.
                let idle = transport.limits.idleTimeout.timeval
                var timeout = timeval(tv_sec: idle.seconds, tv_usec: idle.microseconds)
                bufferevent_set_timeouts(socketEvents, &timeout, &timeout)
                waitForWritable()
                return
            }
        }
        if stuckSince != nil { transport.noteStuck(self, false) }
        bufferevent_trigger(socketEvents, Int16(EV_WRITE), 0)
        onDrained?()
    }

    /// Closes the connection as a failed write would (evhttp frees it and what it holds).
    func abort() {
        guard let socketEvents, !isClosed else { return }
        bufferevent_trigger_event(socketEvents, Int16(BEV_EVENT_WRITING | BEV_EVENT_ERROR), 0)
    }

    /// Bytes evhttp queued that the socket has not taken yet: what a slow reader holds.
    var pendingOutputBytes: Int {
        guard let socketEvents, !isClosed else { return 0 }
        return evbuffer_get_length(bufferevent_get_output(socketEvents))
    }

    /// Tells evhttp the socket refused a write, as the socket's bufferevent would: evhttp
    /// then frees the connection.
    func reportWriteFailure() {
        guard let socketEvents else { return }
        bufferevent_trigger_event(socketEvents, Int16(BEV_EVENT_WRITING | BEV_EVENT_ERROR), 0)
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
