import Access
import HTTPParsing
import JSON
import Registry
import RegistryWire

/// Eureka's REST API under `/eureka/` (Spring Cloud's path), over the same registry: an app
/// is the native service of its name lower-cased (native names that differ only in case are
/// one app), an instance's address is `http://ipAddr:port` (`https://ipAddr:securePort` when
/// only that port is enabled), a renewal is a heartbeat and the lease's `durationInSecs` its
/// TTL. Answers are XML unless `Accept` contains `json`, as Eureka decides; errors are its
/// codes and plain texts, and its empty 404s.
///
/// Unlike Eureka: a registration is seen at once (no 30 s read-only cache), a lease expires
/// after its duration (not twice it), and expiry protection is the registry's own
/// (`--expiry-protection`), with no "EMERGENCY!" banner.
final class EurekaAPI {
    let service: RegistryService
    let native: NativeAPI
    let apps: ServiceNameIndex
    let changes: EurekaChanges
    /// Statuses set with `PUT …/status`, which a re-registration does not undo (Eureka's
    /// overrides); in memory only.
    var overrides: [ConsulNames.Owner: String] = [:]

    init(service: RegistryService, native: NativeAPI, names: ServiceNameIndex) {
        self.service = service
        self.native = native
        apps = names
        changes = EurekaChanges(service: service)
        // An override goes with its instance (expired, or deregistered by any API).
        service.onChange { [unowned self, unowned service] changed in
            guard !overrides.isEmpty else { return }
            let registry = service.snapshot
            for key in overrides.keys where changed.contains(key.service) && registry.instance(service: key.service, id: key.id) == nil {
                overrides[key] = nil
            }
        }
    }

    func routes() -> [Route] {
        let restyle: (Response) -> Response = { [unowned self] in restyled($0) }
        let reads: [HTTPMethod] = [.get, .head]
        return [
            Route(template: "/eureka/apps", methods: reads, frontEnd: .eureka, permission: .read, restyle: restyle) { [self] in
                allApps($0, delta: false)
            },
            // Everything below apps/: the method and the segments decide (register, renew,
            // cancel, status, metadata, reads).
            Route(template: "/eureka/apps/{path}", methods: [.get, .head, .post, .put, .delete], frontEnd: .eureka, permission: .write,
                  restyle: restyle) { [self] in underApps($0) },
            Route(template: "/eureka/instances/{id}", methods: reads, frontEnd: .eureka, permission: .read, restyle: restyle) { [self] in
                instanceByID($0)
            },
            Route(template: "/eureka/vips/{vip}", methods: reads, frontEnd: .eureka, permission: .read, restyle: restyle) { [self] in
                byVIP($0, secure: false)
            },
            Route(template: "/eureka/svips/{vip}", methods: reads, frontEnd: .eureka, permission: .read, restyle: restyle) { [self] in
                byVIP($0, secure: true)
            },
            Route(template: "/eureka/{path}", methods: HTTPMethod.allCases.filter { $0 != .connect }, frontEnd: .eureka, permission: .none,
                  isFallback: true, restyle: restyle) { _ in .respond(Self.empty(404)) },
        ]
    }

    // MARK: Answers

    static func empty(_ status: Int32) -> Response {
        var response = Response(status: status, body: [])
        response.contentType = "text/plain; charset=utf-8"
        return response
    }

    static func text(_ status: Int32, _ message: String) -> Response {
        var response = Response(status: status, body: Array(message.utf8))
        response.contentType = "text/plain; charset=utf-8"
        response.message = message
        return response
    }

    /// A native answer made outside a handler, as plain text (401 and 403 keep their codes:
    /// Eureka's clients send Basic credentials and read a 401 as "wrong credentials").
    func restyled(_ response: Response) -> Response {
        var styled = Self.text(response.status, response.message ?? String(decoding: response.body, as: UTF8.self))
        styled.allow = response.allow
        styled.retryAfter = response.retryAfter
        styled.denial = response.denial
        styled.extraHeaders = response.extraHeaders.filter { $0.name == "WWW-Authenticate" }
        if response.status == 401 { styled.extraHeaders = [("WWW-Authenticate", "Basic realm=\"service-registry\"")] }
        return styled
    }

    private func document(_ body: [UInt8], json: Bool) -> Response {
        var response = Response(status: 200, body: body)
        response.contentType = json ? "application/json" : "application/xml"
        return response
    }

    /// Eureka answers JSON when `Accept` contains "json", XML otherwise.
    private func wantsJSON(_ request: RouteRequest) -> Bool {
        request.header("Accept")?.lowercased().contains("json") ?? false
    }

    // MARK: Reads

    /// Every app the caller may read, as Eureka shows them, with its instances.
    private func applications(_ request: RouteRequest, only wanted: String? = nil, vip: String? = nil, secure: Bool = false)
        -> [(name: String, instances: [EurekaInstance])] {
        let grant = request.caller.grant
        let wallOffset = request.wallClock - request.now.nanoseconds
        var result: [(name: String, instances: [EurekaInstance])] = []
        let keys = wanted.map { [$0.lowercased()] } ?? apps.keys
        service.read { registry in
            for key in keys {
                var instances: [EurekaInstance] = []
                for name in apps.names(lowercased: key) ?? [] where grant.mayRead(name) {
                    for snapshot in registry.instances(ofService: name, now: request.now) {
                        let instance = EurekaView.instance(snapshot, service: name, override: overrides[ConsulNames.Owner(service: name, id: snapshot.id)],
                                                           wallOffset: wallOffset)
                        if let vip, (secure ? instance.secureVipAddress : instance.vipAddress) != vip { continue }
                        instances.append(instance)
                    }
                }
                if !instances.isEmpty { result.append((key.uppercased(), instances)) }
            }
        }
        return result
    }

    private func allApps(_ request: RouteRequest, delta: Bool) -> Handling {
        let json = wantsJSON(request)
        let view = EurekaView(json: json)
        let all = applications(request)
        let hashcode = EurekaView.hashcode(all.flatMap(\.instances))
        if delta {
            let recent = changes.recent(now: request.now, grant: request.caller.grant, overrides: overrides,
                                        wallOffset: request.wallClock - request.now.nanoseconds)
            return .respond(document(view.applications(recent.apps, versionsDelta: recent.version, hashcode: hashcode), json: json))
        }
        return .respond(document(view.applications(all, versionsDelta: 1, hashcode: hashcode), json: json))
    }

    private func instanceByID(_ request: RouteRequest) -> Handling {
        guard case .success(let id) = PercentDecoding.decode(request.parameter) else { return .respond(Self.empty(404)) }
        for app in applications(request) {
            if let found = app.instances.first(where: { $0.instanceId == id }) {
                return .respond(document(EurekaView(json: wantsJSON(request)).instance(found), json: wantsJSON(request)))
            }
        }
        return .respond(Self.empty(404))
    }

    private func byVIP(_ request: RouteRequest, secure: Bool) -> Handling {
        guard case .success(let vip) = PercentDecoding.decode(request.parameter) else { return .respond(Self.empty(404)) }
        let found = applications(request, vip: vip, secure: secure)
        let json = wantsJSON(request)
        return .respond(document(EurekaView(json: json).applications(found, versionsDelta: 1, hashcode: EurekaView.hashcode(found.flatMap(\.instances))),
                                 json: json))
    }

    // MARK: Under /eureka/apps/

    private func underApps(_ request: RouteRequest) -> Handling {
        var segments: [String] = []
        for raw in request.parameter.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            let bytes = Array(raw)
            guard case .success(let segment) = bytes.withUnsafeBufferPointer({ PercentDecoding.decode($0) }) else {
                return .respond(Self.text(400, "malformed percent-encoding in the path"))
            }
            segments.append(segment)
        }
        if segments.last == "" { segments.removeLast() }
        let reading = request.method == .get || request.method == .head
        // The route admits writers; a read needs a caller that may read something, and a write
        // one that may write something, before anything is looked up (no 404 before the 403).
        if reading, case .denied(let denial) = AccessControl.admit(request.caller, to: .read) { return .respond(restyled(denial)) }
        if !reading, !request.caller.grant.writesSomething {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on some service")))
        }
        switch (segments.count, request.method) {
        case (0, .get), (0, .head):
            return allApps(request, delta: false)
        case (1, _) where segments[0] == "delta" && reading:
            return allApps(request, delta: true)
        case (1, .get), (1, .head):
            let found = applications(request, only: segments[0])
            guard let app = found.first else { return .respond(Self.empty(404)) }
            return .respond(document(EurekaView(json: wantsJSON(request)).application(app.name, app.instances), json: wantsJSON(request)))
        case (1, .post):
            return register(request, app: segments[0].uppercased())
        case (2, .get), (2, .head):
            let found = applications(request, only: segments[0]).first?.instances.first { $0.instanceId == segments[1] }
            guard let found else { return .respond(Self.empty(404)) }
            return .respond(document(EurekaView(json: wantsJSON(request)).instance(found), json: wantsJSON(request)))
        case (2, .put):
            return renew(request, app: segments[0], id: segments[1])
        case (2, .delete):
            return cancel(request, app: segments[0], id: segments[1])
        case (3, .put) where segments[2] == "status", (3, .delete) where segments[2] == "status":
            return setStatus(request, app: segments[0], id: segments[1], remove: request.method == .delete)
        case (3, .put) where segments[2] == "metadata":
            return setMetadata(request, app: segments[0], id: segments[1])
        default:
            if segments.count <= 3 && !reading && request.method != .post && request.method != .put && request.method != .delete {
                return .respond(Self.empty(405))
            }
            return .respond(Self.empty(404))
        }
    }

    /// The native service holding instance `id` of `app`: the app's name lower-cased first,
    /// then any native name that differs from it only in case.
    private func owner(app: String, id: String) -> String? {
        let names = apps.names(lowercased: app.lowercased()) ?? []
        let snapshot = service.snapshot
        return names.first { snapshot.instance(service: $0, id: id) != nil }
    }

    private func register(_ request: RouteRequest, app: String) -> Handling {
        let instance: EurekaInstance
        switch EurekaInstance.decodeRegistration(request.body) {
        case .success(let decoded): instance = decoded
        case .failure(let problem): return .respond(Self.text(400, problem.message))
        }
        guard instance.app == app else { return .respond(Self.text(400, "Mismatched appName, expecting \(app) but was \(instance.app)")) }
        // An app registered again under the name it already has natively (`UserService`) stays there.
        let name = owner(app: app, id: instance.instanceId) ?? instance.serviceName
        if let violation = Violation.checkServiceName(name) { return .respond(Self.text(400, "Invalid app name: " + violation.message)) }
        guard request.caller.grant.mayWrite(name) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(name))")))
        }
        let key = ConsulNames.Owner(service: name, id: instance.instanceId)
        let status = overrides[key].flatMap(EurekaInstance.nativeStatus) ?? EurekaInstance.nativeStatus(instance.status) ?? .up
        var fields = InstanceFields(tags: [], metadata: instance.nativeMetadata, status: status, ttl: .seconds(Double(instance.durationInSecs)))
        fields.weight = nil
        let body = RegistrationRequest(service: name, address: instance.nativeAddress, id: instance.instanceId, fields: fields)
        if let refusal = native.admitRegistration(body, caller: request.caller) { return .respond(restyled(refusal)) }
        let outcome = service.register(body, now: request.now)
        native.noteRegistration(body, outcome: outcome)
        switch outcome {
        case .registered, .updated:
            return .respondWhenCommitted(Self.empty(204))
        case .conflict(let existing):
            return .respond(Self.text(409, "the instance id \(Violation.quoted(instance.instanceId)) is taken at \(existing)"))
        case .invalid(let violation):
            return .respond(Self.text(400, violation.message))
        case .overLimit:
            return .respond(restyled(native.limitRefusal(outcome, service: name)))
        }
    }

    private func renew(_ request: RouteRequest, app: String, id: String) -> Handling {
        guard let name = owner(app: app, id: id) else { return .respond(Self.empty(404)) }
        guard request.caller.grant.mayWrite(name) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(name))")))
        }
        switch service.heartbeat(InstanceReference(service: name, id: id), now: request.now) {
        case .done: return .respondWhenCommitted(Self.empty(200))
        case .invalid(let violation): return .respond(Self.text(400, violation.message))
        case .unknownService, .unknownInstance, .unknownCheck: return .respond(Self.empty(404))
        }
    }

    private func cancel(_ request: RouteRequest, app: String, id: String) -> Handling {
        guard let name = owner(app: app, id: id) else { return .respond(Self.empty(404)) }
        guard request.caller.grant.mayWrite(name) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(name))")))
        }
        overrides[ConsulNames.Owner(service: name, id: id)] = nil
        switch service.deregister(InstanceReference(service: name, id: id), now: request.now) {
        case .done: return .respondWhenCommitted(Self.empty(200))
        case .invalid(let violation): return .respond(Self.text(400, violation.message))
        case .unknownService, .unknownInstance, .unknownCheck: return .respond(Self.empty(404))
        }
    }

    /// `PUT …/status?value=S` sets an override a re-registration keeps; `DELETE …/status`
    /// removes it (the status becomes `value`, or UP).
    private func setStatus(_ request: RouteRequest, app: String, id: String, remove: Bool) -> Handling {
        guard let name = owner(app: app, id: id) else { return .respond(Self.empty(404)) }
        guard request.caller.grant.mayWrite(name) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(name))")))
        }
        var value: String?
        try? QueryPairs.each(request.query) { key, given throws(WireProblem) in if key == "value" { value = given.uppercased() } }
        let key = ConsulNames.Owner(service: name, id: id)
        let target: InstanceStatus
        if remove {
            overrides[key] = nil
            target = value.flatMap(EurekaInstance.nativeStatus) ?? .up
        } else {
            // Eureka answers a missing or unknown value with 500 (InstanceStatus.valueOf throws).
            guard let value, let status = EurekaInstance.nativeStatus(value) else {
                return .respond(Self.text(500, "value must be one of \(EurekaInstance.statuses.joined(separator: ", "))"))
            }
            overrides[key] = value
            target = status
        }
        switch service.setStatus(InstanceReference(service: name, id: id), to: target, now: request.now) {
        case .done: return .respondWhenCommitted(Self.empty(200))
        case .invalid(let violation): return .respond(Self.text(400, violation.message))
        case .unknownService, .unknownInstance, .unknownCheck: return .respond(Self.empty(404))
        }
    }

    /// `PUT …/metadata?k=v&…`: each pair set (the first value of a key wins), the rest kept.
    private func setMetadata(_ request: RouteRequest, app: String, id: String) -> Handling {
        guard let name = owner(app: app, id: id), let instance = service.snapshot.instance(service: name, id: id) else {
            return .respond(Self.empty(404))
        }
        guard request.caller.grant.mayWrite(name) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(name))")))
        }
        var metadata = instance.metadata
        var given = Set<String>()
        do throws(WireProblem) {
            try QueryPairs.each(request.query) { key, value throws(WireProblem) in
                guard given.insert(key).inserted else { return }
                metadata.removeAll { $0.key == key }
                metadata.append(MetadataEntry(key, value))
            }
        } catch {
            return .respond(Self.text(400, error.message))
        }
        let body = RegistrationRequest(service: name, address: instance.address, id: id,
                                       fields: InstanceFields(metadata: metadata.sorted { $0.key < $1.key }))
        switch service.register(body, now: request.now) {
        case .registered, .updated: return .respondWhenCommitted(Self.empty(200))
        case .invalid(let violation): return .respond(Self.text(400, violation.message))
        default: return .respond(Self.text(500, "the metadata could not be set"))
        }
    }
}
