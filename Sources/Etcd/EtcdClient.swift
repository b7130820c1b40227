import CLibevent
import JSON
import TLS

/// etcd's v3 API through its JSON gateway, on the caller's libevent loop: every call is
/// asynchronous and its completion runs on that loop.
///
/// Requests go to one member at a time (`preferred`); when it cannot be reached, times out
/// or cannot reach its own leader, the request moves to the next member, each member tried
/// once per request, and later requests start from the member that answered. Each member
/// gets a small pool of kept-alive connections, so that several requests are in flight at
/// once (evhttp sends one request per connection at a time). Host names are resolved by
/// libevent's asynchronous resolver.
public final class EtcdClient {
    public let endpoints: [EtcdEndpoint]
    public let requestTimeout: Duration
    let base: OpaquePointer
    /// libevent's asynchronous resolver on this loop; others on the loop may use it too.
    public let dns: OpaquePointer?
    private let poolSize: Int
    private var pools: [[OpaquePointer]]
    private var nextInPool = 0
    /// The member requests start with.
    public private(set) var preferred = 0
    /// Called on the loop whenever a member answered a request with success (for "last
    /// contact": reads and writes need the cluster's quorum; `status` does not count).
    public var onAnswer: ((EtcdEndpoint) -> Void)?
    /// Called when requests move from one member to another, and why.
    public var onFailover: ((_ from: EtcdEndpoint, _ to: EtcdEndpoint, _ why: EtcdError) -> Void)?
    /// For `https://` members: the CAs their certificates must chain to, and a client
    /// certificate for members started with `--client-cert-auth` (the system's CAs and none
    /// when nil).
    public var tls: TLSClientContext?
    /// etcd's authentication (`auth enable`): the user and password this client
    /// authenticates with (`/v3/auth/authenticate`); its token goes with every request and is
    /// renewed when etcd says it is no longer valid.
    public var credentials: (user: String, password: String)?
    /// The token of the last authentication, while etcd accepts it.
    private var authToken: String?
    /// Requests waiting for an authentication in flight.
    private var awaitingToken: [(Result<Void, EtcdError>) -> Void] = []
    /// Pooled connections libevent has closed: a TLS connection cannot be reconnected (its
    /// session is over), so the next request replaces it.
    private var closed: Set<OpaquePointer> = []

    /// `startingAt` is the member requests start with (clients that start at different
    /// members spread the members' work: each watch's events are encoded by its member).
    public init(endpoints: [EtcdEndpoint], base: OpaquePointer, requestTimeout: Duration = .seconds(5), poolSize: Int = 4,
                startingAt: Int = 0) {
        precondition(!endpoints.isEmpty, "an etcd client needs at least one endpoint")
        self.endpoints = endpoints
        preferred = max(0, startingAt) % endpoints.count
        self.base = base
        self.requestTimeout = requestTimeout
        self.poolSize = max(1, poolSize)
        pools = Array(repeating: [], count: endpoints.count)
        // Name servers from /etc/resolv.conf; without any, IP literals still work.
        dns = evdns_base_new(base, Int32(EVDNS_BASE_INITIALIZE_NAMESERVERS))
    }

    deinit {
        for pool in pools { for connection in pool { evhttp_connection_free(connection) } }
        if let dns { evdns_base_free(dns, 0) }
    }

    public var preferredEndpoint: EtcdEndpoint { endpoints[preferred] }

    // MARK: The API

    /// The keys from `key` up to `rangeEnd` (nil: `key` alone), at `revision` (0: the latest),
    /// at most `limit` of them (0: all).
    public func range(_ key: [UInt8], rangeEnd: [UInt8]? = nil, revision: Int64 = 0, limit: Int64 = 0,
                      completion: @escaping (Result<RangeResponse, EtcdError>) -> Void) {
        var json = JSONWriter(capacity: 128)
        json.raw("{\"key\":")
        json.string(Base64.encode(key))
        if let rangeEnd {
            json.raw(",\"range_end\":")
            json.string(Base64.encode(rangeEnd))
        }
        if revision > 0 {
            json.raw(",\"revision\":\"")
            json.integer(revision)
            json.raw("\"")
        }
        if limit > 0 {
            json.raw(",\"limit\":\"")
            json.integer(limit)
            json.raw("\"")
        }
        json.raw("}")
        post("/v3/kv/range", json.bytes) { result in
            completion(result.flatMap { json in Result { () throws(EtcdError) in try RangeResponse(json) } })
        }
    }

    /// A transaction: when every compare holds, `success` runs, otherwise `failure`; all of
    /// it at one revision. etcd takes at most 128 operations per transaction by default.
    public func txn(compare: [Compare], success: [Operation], failure: [Operation] = [],
                    completion: @escaping (Result<TxnResponse, EtcdError>) -> Void) {
        var json = JSONWriter(capacity: 256 + success.count * 200)
        json.raw("{\"compare\":[")
        for (index, item) in compare.enumerated() {
            if index > 0 { json.raw(",") }
            item.write(to: &json)
        }
        json.raw("],\"success\":[")
        for (index, item) in success.enumerated() {
            if index > 0 { json.raw(",") }
            item.write(to: &json)
        }
        json.raw("],\"failure\":[")
        for (index, item) in failure.enumerated() {
            if index > 0 { json.raw(",") }
            item.write(to: &json)
        }
        json.raw("]}")
        post("/v3/kv/txn", json.bytes) { result in
            completion(result.flatMap { json in Result { () throws(EtcdError) in try TxnResponse(json) } })
        }
    }

    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64 = 0, completion: @escaping (Result<ResponseHeader, EtcdError>) -> Void) {
        txn(compare: [], success: [.put(key: key, value: value, lease: lease)]) { result in
            completion(result.map(\.header))
        }
    }

    public func delete(_ key: [UInt8], rangeEnd: [UInt8]? = nil, completion: @escaping (Result<ResponseHeader, EtcdError>) -> Void) {
        txn(compare: [], success: [.delete(key: key, rangeEnd: rangeEnd)]) { result in
            completion(result.map(\.header))
        }
    }

    /// A lease of `ttl` seconds (etcd's minimum is 2; it may grant a longer one).
    public func grantLease(ttl: Int64, completion: @escaping (Result<LeaseGrant, EtcdError>) -> Void) {
        var json = JSONWriter()
        json.raw("{\"TTL\":\"")
        json.integer(ttl)
        json.raw("\"}")
        post("/v3/lease/grant", json.bytes) { result in
            completion(result.flatMap { json in
                let id = json.int64(member: "ID")
                guard id != 0 else { return .failure(EtcdError(.malformed, "etcd granted a lease without an ID")) }
                return .success(LeaseGrant(header: ResponseHeader(json[member: "header"]), id: id, ttl: json.int64(member: "TTL")))
            })
        }
    }

    /// Renews a lease once. The answer is the TTL it has now; 0 means the lease is gone
    /// (expired or revoked): whatever it held has been deleted.
    public func keepAlive(lease: Int64, completion: @escaping (Result<Int64, EtcdError>) -> Void) {
        post("/v3/lease/keepalive", Self.leaseBody(lease)) { result in
            completion(result.map { json in (json[member: "result"] ?? json).int64(member: "TTL") })
        }
    }

    public func revoke(lease: Int64, completion: @escaping (Result<Void, EtcdError>) -> Void) {
        post("/v3/lease/revoke", Self.leaseBody(lease)) { result in
            switch result {
            case .success: completion(.success(()))
            // Revoking a lease that is already gone is what was wanted.
            case .failure(let error) where error.message.contains("requested lease not found"): completion(.success(()))
            case .failure(let error): completion(.failure(error))
            }
        }
    }

    /// `{"ID":"…"}`: the body of a keep-alive and of a revoke.
    private static func leaseBody(_ lease: Int64) -> [UInt8] {
        var json = JSONWriter()
        json.raw("{\"ID\":\"")
        json.integer(lease)
        json.raw("\"}")
        return json.bytes
    }

    /// What one member says of itself; asks that member only.
    public func status(of endpoint: Int, completion: @escaping (Result<MemberStatus, EtcdError>) -> Void) {
        attempt("/v3/maintenance/status", Array("{}".utf8), endpoint: endpoint, triesLeft: 1, counts: false) { result in
            completion(result.map { json in
                var errors: [String] = []
                if case .array(let items)? = json[member: "errors"] {
                    errors = items.compactMap(\.stringValue)
                }
                return MemberStatus(header: ResponseHeader(json[member: "header"]), version: json[member: "version"]?.stringValue ?? "",
                                    leader: json[member: "leader"]?.stringValue ?? "", raftIndex: json.int64(member: "raftIndex"),
                                    dbSize: json.int64(member: "dbSize"), errors: errors)
            })
        }
    }

    /// POSTs `body` to `path`, moving to the next member when one fails. With `credentials`,
    /// authenticates first when there is no token, and once more when etcd refuses the one
    /// sent (it expired, or the member restarted).
    public func post(_ path: String, _ body: [UInt8], completion: @escaping (Result<JSONValue, EtcdError>) -> Void) {
        authorized { [weak self] ready in
            guard let self else { return }
            if case .failure(let error) = ready { return completion(.failure(error)) }
            let sentToken = authToken
            attempt(path, body, endpoint: preferred, triesLeft: endpoints.count) { [weak self] result in
                guard let self, case .failure(let error) = result, error.isInvalidToken, credentials != nil else {
                    return completion(result)
                }
                if authToken == sentToken { authToken = nil }
                authorized { [weak self] again in
                    guard let self else { return }
                    if case .failure(let error) = again { return completion(.failure(error)) }
                    attempt(path, body, endpoint: preferred, triesLeft: endpoints.count, completion: completion)
                }
            }
        }
    }

    /// A watch saw its token refused: the next request authenticates again.
    func forgetToken() { authToken = nil }

    /// Runs `body` once requests carry a valid token (at once without `credentials`).
    func authorized(_ body: @escaping (Result<Void, EtcdError>) -> Void) {
        guard let credentials, authToken == nil else { return body(.success(())) }
        awaitingToken.append(body)
        guard awaitingToken.count == 1 else { return }
        var json = JSONWriter()
        json.raw("{\"name\":")
        json.string(credentials.user)
        json.raw(",\"password\":")
        json.string(credentials.password)
        json.raw("}")
        attempt("/v3/auth/authenticate", json.bytes, endpoint: preferred, triesLeft: endpoints.count, counts: false,
                authenticating: true) { [weak self] result in
            guard let self else { return }
            let outcome: Result<Void, EtcdError>
            switch result {
            case .success(let answer):
                if let token = answer[member: "token"]?.stringValue, !token.isEmpty {
                    authToken = token
                    outcome = .success(())
                } else {
                    outcome = .failure(EtcdError(.malformed, "etcd answered the authentication of \(credentials.user) without a token"))
                }
            case .failure(let error):
                outcome = .failure(EtcdError(error.kind, "etcd refused to authenticate user \(credentials.user): \(error.message); "
                    + "check --etcd-user and --etcd-password-file, and that etcd's auth is enabled for that user"))
            }
            let waiting = awaitingToken
            awaitingToken = []
            for resume in waiting { resume(outcome) }
        }
    }

    // MARK: Connections and failover

    private func attempt(_ path: String, _ body: [UInt8], endpoint: Int, triesLeft: Int, counts: Bool = true,
                         authenticating: Bool = false, completion: @escaping (Result<JSONValue, EtcdError>) -> Void) {
        send(path, body, on: connection(to: endpoint), endpoint: endpoints[endpoint], withToken: !authenticating) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success:
                if counts { onAnswer?(endpoints[endpoint]) }
                completion(result)
            case .failure(let error):
                guard error.worthAnotherMember, triesLeft > 1, endpoints.count > 1 else {
                    completion(result)
                    return
                }
                let next = (endpoint + 1) % endpoints.count
                movePreferred(from: endpoint, to: next, because: error)
                attempt(path, body, endpoint: next, triesLeft: triesLeft - 1, counts: counts, authenticating: authenticating,
                        completion: completion)
            }
        }
    }

    /// Requests start from `to` from now on, if they still started from `from`.
    public func movePreferred(from: Int, to: Int, because error: EtcdError) {
        guard preferred == from, from != to else { return }
        preferred = to
        onFailover?(endpoints[from], endpoints[to], error)
    }

    /// After a failure seen elsewhere (a watch that broke): the next member is preferred.
    public func preferNext(because error: EtcdError) {
        movePreferred(from: preferred, to: (preferred + 1) % endpoints.count, because: error)
    }

    private func connection(to endpoint: Int) -> OpaquePointer {
        if !closed.isEmpty, let index = pools[endpoint].firstIndex(where: { closed.contains($0) }) {
            let stale = pools[endpoint].remove(at: index)
            closed.remove(stale)
            evhttp_connection_free(stale)
        }
        if pools[endpoint].count < poolSize {
            let made = makeConnection(to: endpoints[endpoint], timeout: requestTimeout)
            pools[endpoint].append(made)
            return made
        }
        nextInPool = (nextInPool + 1) % poolSize
        return pools[endpoint][nextInPool]
    }

    func makeConnection(to endpoint: EtcdEndpoint, timeout: Duration, pooled: Bool = true) -> OpaquePointer {
        let made: OpaquePointer
        if endpoint.secure {
            if tls == nil { tls = try? TLSClientContext() }
            guard let events = tls?.connectingBufferevent(base, host: endpoint.host),
                  let connection = evhttp_connection_base_bufferevent_new(base, dns, events, endpoint.host, endpoint.port) else {
                fatalError("cannot create a TLS connection to etcd at \(endpoint)")
            }
            made = connection
            if pooled {
                evhttp_connection_set_closecb(made, { connection, context in
                    guard let connection, let context else { return }
                    Unmanaged<EtcdClient>.fromOpaque(context).takeUnretainedValue().closed.insert(connection)
                }, Unmanaged.passUnretained(self).toOpaque())
            }
        } else {
            guard let connection = evhttp_connection_base_new(base, dns, endpoint.host, endpoint.port) else {
                fatalError("cannot create an HTTP connection to etcd at \(endpoint)")
            }
            made = connection
        }
        let (seconds, attoseconds) = timeout.components
        var interval = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        evhttp_connection_set_timeout_tv(made, &interval)
        evhttp_connection_set_retries(made, 0)
        return made
    }

    /// One HTTP request; `onChunk` makes it a stream (a watch). Returns the request, which
    /// `cancel` may end (its completion is then never called).
    @discardableResult
    func send(_ path: String, _ body: [UInt8], on connection: OpaquePointer, endpoint: EtcdEndpoint, withToken: Bool = true,
              onChunk: ((UnsafeMutablePointer<evhttp_request>) -> Void)? = nil,
              completion: @escaping (Result<JSONValue, EtcdError>) -> Void) -> UnsafeMutablePointer<evhttp_request>? {
        let call = EtcdCall(endpoint: endpoint, path: path, completion: completion, onChunk: onChunk)
        if endpoint.secure { call.tlsEvents = evhttp_connection_get_bufferevent(connection) }
        let context = Unmanaged.passRetained(call).toOpaque()
        guard let request = evhttp_request_new({ request, context in
            Unmanaged<EtcdCall>.fromOpaque(context!).takeRetainedValue().finish(request)
        }, context) else {
            Unmanaged<EtcdCall>.fromOpaque(context).release()
            completion(.failure(EtcdError(.unreachable, "cannot create an HTTP request for etcd")))
            return nil
        }
        evhttp_request_set_error_cb(request) { error, context in
            let call = Unmanaged<EtcdCall>.fromOpaque(context!)
            if error == EVREQ_HTTP_REQUEST_CANCEL {
                // Canceled by us: libevent calls nothing else.
                call.release()
            } else {
                call.takeUnretainedValue().error = error
            }
        }
        if onChunk != nil {
            evhttp_request_set_chunked_cb(request) { request, context in
                guard let request else { return }
                let call = Unmanaged<EtcdCall>.fromOpaque(context!).takeUnretainedValue()
                call.onChunk?(request)
            }
        }
        let headers = evhttp_request_get_output_headers(request)
        evhttp_add_header(headers, "Host", endpoint.host.contains(":") ? "[\(endpoint.host)]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)")
        evhttp_add_header(headers, "Content-Type", "application/json")
        if withToken, let authToken { evhttp_add_header(headers, "Authorization", authToken) }
        body.withUnsafeBytes { _ = evbuffer_add(evhttp_request_get_output_buffer(request), $0.baseAddress, $0.count) }
        if evhttp_make_request(connection, request, EVHTTP_REQ_POST, path) != 0 {
            // libevent has freed the request and called nothing.
            Unmanaged<EtcdCall>.fromOpaque(context).release()
            completion(.failure(EtcdError(.unreachable, "cannot send a request to etcd at \(endpoint)")))
            return nil
        }
        return request
    }
}

/// One request in flight.
final class EtcdCall {
    let endpoint: EtcdEndpoint
    let path: String
    let completion: (Result<JSONValue, EtcdError>) -> Void
    let onChunk: ((UnsafeMutablePointer<evhttp_request>) -> Void)?
    var error: evhttp_request_error?
    /// A TLS request's bufferevent, asked why the connection failed.
    var tlsEvents: OpaquePointer?

    init(endpoint: EtcdEndpoint, path: String, completion: @escaping (Result<JSONValue, EtcdError>) -> Void,
         onChunk: ((UnsafeMutablePointer<evhttp_request>) -> Void)?) {
        self.endpoint = endpoint
        self.path = path
        self.completion = completion
        self.onChunk = onChunk
    }

    func finish(_ request: UnsafeMutablePointer<evhttp_request>?) {
        guard let request, evhttp_request_get_response_code(request) != 0 else {
            if error == EVREQ_HTTP_TIMEOUT {
                completion(.failure(EtcdError(.timedOut, "etcd at \(endpoint) did not answer \(path) in time")))
            } else if let tlsEvents, let failure = TLSClientContext.failure(of: tlsEvents) {
                completion(.failure(EtcdError(.unreachable, "the TLS connection to etcd at \(endpoint) failed: \(failure); check "
                    + "--etcd-cacert (the CA of etcd's certificate) and, if etcd asks for one, --etcd-cert and --etcd-key")))
            } else {
                completion(.failure(EtcdError(.unreachable, "etcd at \(endpoint) could not be reached or closed the connection (\(path))")))
            }
            return
        }
        let status = Int(evhttp_request_get_response_code(request))
        var body: [UInt8] = []
        if let buffer = evhttp_request_get_input_buffer(request) {
            let length = evbuffer_get_length(buffer)
            if length > 0 {
                body = [UInt8](repeating: 0, count: length)
                evbuffer_remove(buffer, &body, length)
            }
        }
        completion(Self.decode(body, status: status, endpoint: endpoint, path: path))
    }

    /// The gateway's answer: JSON, or its error shape (`{"error":…,"code":N}`, or for a
    /// stream `{"error":{"grpc_code":N,"message":…}}`).
    static func decode(_ body: [UInt8], status: Int, endpoint: EtcdEndpoint, path: String) -> Result<JSONValue, EtcdError> {
        guard let json = try? JSONParser.parse(body) else {
            let text = String(decoding: body.prefix(120), as: UTF8.self)
            return .failure(EtcdError(.malformed, "the server at \(endpoint) answered \(path) with \(status) and no JSON (\(text)); is it etcd's client URL?"))
        }
        if let failure = serverError(json, endpoint: endpoint) { return .failure(failure) }
        guard status == 200 else {
            return .failure(EtcdError(.malformed, "etcd at \(endpoint) answered \(path) with \(status)"))
        }
        return .success(json)
    }

    static func serverError(_ json: JSONValue, endpoint: EtcdEndpoint) -> EtcdError? {
        guard let error = json[member: "error"] else { return nil }
        if case .object = error {
            let code = Int(error.int64(member: "grpc_code"))
            let message = error[member: "message"]?.stringValue ?? "unknown error"
            return EtcdError(.server(code: code), "etcd at \(endpoint): \(message)")
        }
        let code = Int(json.int64(member: "code"))
        let message = json[member: "message"]?.stringValue ?? error.stringValue ?? "unknown error"
        return EtcdError(.server(code: code), "etcd at \(endpoint): \(message)")
    }
}
