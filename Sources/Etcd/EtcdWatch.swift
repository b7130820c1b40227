import CLibevent
import JSON

/// One watch stream over the JSON gateway: a POST to `/v3/watch` whose chunked answer
/// carries one JSON message per line, for as long as the connection lives.
///
/// libevent's HTTP client cannot stream a request body, so the watch cannot be canceled
/// in-band; `cancel()` closes its connection. Its read timeout is long (`idleTimeout`),
/// not off: etcd sends progress notifications only every 10 minutes unless it runs with
/// `--experimental-watch-progress-notify-interval`, so the owner judges the member's health
/// by other requests (its lease keep-alives) and restarts the watch elsewhere.
///
/// `onResponse` gets each message (events, progress, or the creation); `onEnd` is called
/// once, when the stream ends for any reason other than `cancel()`: etcd canceled it
/// (`.compacted` when the start revision is gone), the connection broke, or it timed out.
public final class EtcdWatch {
    private let client: EtcdClient
    private let link: Link
    private var pending: [UInt8] = []
    private var ended = false
    public let endpoint: EtcdEndpoint
    private let onResponse: (WatchResponse) -> Void
    private let onEnd: (EtcdError) -> Void

    /// Watches every key from `key` up to `rangeEnd` from `startRevision` on, on the
    /// client's preferred member.
    public init(client: EtcdClient, key: [UInt8], rangeEnd: [UInt8]?, startRevision: Int64, progressNotify: Bool = true,
                idleTimeout: Duration = .seconds(3600),
                onResponse: @escaping (WatchResponse) -> Void, onEnd: @escaping (EtcdError) -> Void) {
        self.client = client
        self.endpoint = client.preferredEndpoint
        self.onResponse = onResponse
        self.onEnd = onEnd
        link = Link(connection: client.makeConnection(to: endpoint, timeout: idleTimeout, pooled: false), base: client.base)
        var json = JSONWriter(capacity: 160)
        json.raw("{\"create_request\":{\"key\":")
        json.string(Base64.encode(key))
        if let rangeEnd {
            json.raw(",\"range_end\":")
            json.string(Base64.encode(rangeEnd))
        }
        json.raw(",\"start_revision\":\"")
        json.integer(startRevision)
        json.raw("\"")
        if progressNotify { json.raw(",\"progress_notify\":true") }
        json.raw("}}")
        let link = link
        let body = json.bytes
        // With etcd auth, the stream starts once the client holds a token.
        client.authorized { [weak self] ready in
            guard let self, !ended else { return }
            if case .failure(let error) = ready { return end(error) }
            link.request = client.send("/v3/watch", body, on: link.connection, endpoint: endpoint, onChunk: { [weak self] request in
                self?.arrived(request)
            }, completion: { [weak self] result in
                link.request = nil
                guard let self else { return }
                switch result {
                case .failure(let error): end(error)
                case .success(let json):
                    // The stream's last piece may come with the end of the answer.
                    if case .object = json { deliver(json) }
                    end(EtcdError(.unreachable, "etcd at \(endpoint) ended the watch stream"))
                }
            })
            if link.request == nil { ended = true }
        }
    }

    deinit { link.close() }

    /// Ends the stream; `onEnd` is not called.
    public func cancel() {
        ended = true
        link.close()
    }

    public var isEnded: Bool { ended }

    private func arrived(_ request: UnsafeMutablePointer<evhttp_request>) {
        guard !ended, let buffer = evhttp_request_get_input_buffer(request) else { return }
        let length = evbuffer_get_length(buffer)
        guard length > 0 else { return }
        let start = pending.count
        pending.append(contentsOf: repeatElement(0, count: length))
        pending.withUnsafeMutableBufferPointer { _ = evbuffer_remove(buffer, $0.baseAddress! + start, length) }
        var lineStart = 0
        var index = start
        // Lines already scanned end before `start`; only the new bytes can hold a newline.
        while index < pending.count {
            if pending[index] == UInt8(ascii: "\n") {
                if index > lineStart {
                    let line = Array(pending[lineStart..<index])
                    if let json = try? JSONParser.parse(line) {
                        deliver(json)
                    } else {
                        end(EtcdError(.malformed, "etcd at \(endpoint) sent a watch message that is not JSON"))
                        return
                    }
                    if ended { return }
                }
                lineStart = index + 1
            }
            index += 1
        }
        if lineStart > 0 { pending.removeFirst(lineStart) }
    }

    private func deliver(_ json: JSONValue) {
        if let failure = EtcdCall.serverError(json, endpoint: endpoint) {
            end(failure)
            return
        }
        guard let result = json[member: "result"] else { return }
        let response: WatchResponse
        do {
            response = try WatchResponse(result)
        } catch {
            end(error)
            return
        }
        if response.canceled {
            if response.compactRevision > 0 {
                end(EtcdError(.compacted(revision: response.compactRevision),
                              "etcd at \(endpoint) has compacted past the watch's start (oldest revision kept: \(response.compactRevision))"))
            } else {
                end(EtcdError(.server(code: 0), "etcd at \(endpoint) canceled the watch: \(response.cancelReason)"))
            }
            return
        }
        onResponse(response)
    }

    private func end(_ error: EtcdError) {
        guard !ended else { return }
        ended = true
        if error.isInvalidToken { client.forgetToken() }
        link.close()
        onEnd(error)
    }

    /// The stream's request and connection. Closing happens on the next pass of the loop,
    /// never inside one of the request's own callbacks (where canceling it would free what
    /// libevent is still using); a request that completed meanwhile is not canceled.
    private final class Link {
        let connection: OpaquePointer
        let base: OpaquePointer
        var request: UnsafeMutablePointer<evhttp_request>?
        private var closing = false

        init(connection: OpaquePointer, base: OpaquePointer) {
            self.connection = connection
            self.base = base
        }

        func close() {
            guard !closing else { return }
            closing = true
            var now = timeval(tv_sec: 0, tv_usec: 0)
            let context = Unmanaged.passRetained(self).toOpaque()
            event_base_once(base, -1, Int16(EV_TIMEOUT), { _, _, context in
                let link = Unmanaged<Link>.fromOpaque(context!).takeRetainedValue()
                if let request = link.request {
                    link.request = nil
                    evhttp_cancel_request(request)
                }
                evhttp_connection_free(link.connection)
            }, context, &now)
        }
    }
}
