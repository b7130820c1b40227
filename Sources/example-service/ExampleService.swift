#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import JSON
import Registry
import RegistryClient
import TLS
import RegistryWire

/// The seed's example service, made real: it serves HTTP on its port, registers with the
/// registry, heartbeats, registers again when the registry says it does not know it, and
/// deregisters on SIGTERM or SIGINT. Everything runs on one libevent loop; the registry
/// calls are asynchronous on that loop, so serving never waits for the registry.
final class ExampleService {
    let name: String
    let host: String
    let port: UInt16
    let address: String
    let interval: Duration
    private let base: OpaquePointer
    private let http: OpaquePointer
    private let registry: RegistryConnection
    private var heartbeatTimer: OpaquePointer?
    private var signalEvents: [OpaquePointer] = []
    private var registered = false
    private var stopping = false
    private var requestsServed = 0

    struct StartError: Error {
        let message: String
    }

    init(name: String, host: String, port: UInt16, address: String, registryURLs: [RegistryURL], token: String?, tls: TLSClientContext? = nil,
         interval: Duration) throws(StartError) {
        self.name = name
        self.host = host
        self.port = port
        self.address = address
        self.interval = interval
        guard let base = event_base_new() else { throw StartError(message: "cannot create an event base") }
        self.base = base
        guard let http = evhttp_new(base) else { throw StartError(message: "cannot create an HTTP server") }
        self.http = http
        registry = RegistryConnection(urls: registryURLs, base: base, timeout: .seconds(3))
        registry.token = token
        registry.tls = tls
        guard evhttp_bind_socket(http, host, port) == 0 else {
            throw StartError(message: "cannot listen on \(host):\(port): \(String(cString: strerror(errno))); choose another PORT or --host")
        }
        let context = Unmanaged.passUnretained(self).toOpaque()
        evhttp_set_gencb(http, { request, context in
            guard let request, let context else { return }
            Unmanaged<ExampleService>.fromOpaque(context).takeUnretainedValue().serve(request)
        }, context)
        heartbeatTimer = CLibevent_evtimer_new(base, { _, _, context in
            Unmanaged<ExampleService>.fromOpaque(context!).takeUnretainedValue().beat()
        }, context)
        for signal in [SIGTERM, SIGINT] {
            guard let event = CLibevent_evsignal_new(base, signal, { signal, _, context in
                Unmanaged<ExampleService>.fromOpaque(context!).takeUnretainedValue().stop(signal: signal)
            }, context) else { continue }
            event_add(event, nil)
            signalEvents.append(event)
        }
    }

    func run() {
        log("starting", "\(name) on \(host):\(port), registering as \(address) with \(registry.urls.map(\.description).joined(separator: ","))")
        register()
        event_base_dispatch(base)
        log("stopped", "\(name) served \(requestsServed) requests")
    }

    // MARK: Serving

    private func serve(_ request: UnsafeMutablePointer<evhttp_request>) {
        requestsServed += 1
        let path = evhttp_request_get_uri(request).map { String(cString: $0) } ?? "/"
        var json = JSONWriter()
        let status: Int32
        if path == "/health" {
            json.raw("{\"status\":\"healthy\",\"service\":")
            json.string(name)
            json.raw("}")
            status = 200
        } else if path == "/" || path.hasPrefix("/?") {
            json.raw("{\"service\":")
            json.string(name)
            json.raw(",\"address\":")
            json.string(address)
            json.raw(",\"message\":")
            json.string("Hello from \(name)")
            json.raw(",\"requests_served\":")
            json.integer(requestsServed)
            json.raw("}")
            status = 200
        } else {
            json.raw("{\"status\":\"error\",\"message\":")
            json.string("no such path: \(path); try / or /health")
            json.raw("}")
            status = 404
        }
        evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", "application/json")
        json.bytes.withUnsafeBytes { _ = evbuffer_add(evhttp_request_get_output_buffer(request), $0.baseAddress, $0.count) }
        evhttp_send_reply(request, status, nil, nil)
    }

    // MARK: The registry

    private var registration: RegistrationRequest {
        var fields = InstanceFields()
        fields.tags = ["example"]
        fields.metadata = [MetadataEntry("port", String(port))]
        return RegistrationRequest(service: name, address: address, fields: fields)
    }

    private func register() {
        registry.send(.post, "/register", body: registration.encode()) { [self] result in
            switch result {
            case .success(let reply) where (200..<300).contains(reply.status):
                registered = true
                log("registered", reply.message ?? "")
            case .success(let reply):
                log("registration_refused", "\(reply.status): \(reply.message ?? reply.text)")
            case .failure(let failure):
                log("registry_unreachable", "\(failure.message); retrying")
            }
            schedule(registered ? interval : .seconds(2))
        }
    }

    private func beat() {
        guard !stopping else { return }
        guard registered else {
            register()
            return
        }
        registry.send(.post, "/heartbeat", body: registration.reference.encode()) { [self] result in
            switch result {
            case .success(let reply) where reply.status == 200:
                schedule(interval)
            case .success(let reply) where reply.status == 404:
                // The registry lost us (an expiry, or a registry without a data directory
                // that restarted): register again, as the seed's client never did.
                log("unknown_to_registry", "\(reply.message ?? "404"); registering again")
                registered = false
                register()
            case .success(let reply):
                log("heartbeat_refused", "\(reply.status): \(reply.message ?? reply.text)")
                schedule(.seconds(2))
            case .failure(let failure):
                log("registry_unreachable", "\(failure.message); retrying")
                schedule(.seconds(2))
            }
        }
    }

    private func schedule(_ delay: Duration) {
        guard !stopping, let heartbeatTimer else { return }
        let (seconds, attoseconds) = delay.components
        var interval = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        CLibevent_evtimer_add(heartbeatTimer, &interval)
    }

    private func stop(signal: Int32) {
        guard !stopping else {
            event_base_loopbreak(base)
            return
        }
        stopping = true
        if let heartbeatTimer { CLibevent_evtimer_del(heartbeatTimer) }
        log("stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT")
        registry.send(.post, "/deregister", body: registration.reference.encode()) { [self] result in
            switch result {
            case .success(let reply) where reply.status == 200:
                log("deregistered", reply.message ?? "\(name) at \(address)")
            case .success(let reply) where reply.status == 404:
                log("already_gone", "the registry no longer had \(name) at \(address) (it expired, or was deregistered); nothing to undo")
            case .success(let reply):
                log("deregistration_refused", "the registry answered \(reply.status): \(reply.message ?? reply.text); "
                    + "the instance will expire by itself")
            case .failure(let failure): log("deregistration_failed", "\(failure.message); the instance will expire by itself")
            }
            event_base_loopbreak(base)
        }
    }

    /// One line per event on stdout, written at once (a pipe to a log collector must not
    /// wait for a buffer to fill).
    private func log(_ event: String, _ detail: String) {
        let line = "\(event): \(detail)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    }
}
