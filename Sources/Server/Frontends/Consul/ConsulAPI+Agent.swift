import Access
import HTTPParsing
import JSON
import Registry
import RegistryWire

/// The agent's writes (`/v1/agent/service/register`, `deregister`, `maintenance`, the TTL
/// checks' `check/pass|warn|fail|update`) and its reads (`services`, `checks`, `self`).
extension ConsulAPI {
    func register(_ request: RouteRequest) -> Handling {
        if case .failure(let refusal) = query(request) { return .respond(refusal.response) }
        let registration: ConsulRegistration
        switch ConsulRegistration.decode(request.body) {
        case .success(let decoded): registration = decoded
        case .failure(let problem): return .respond(text(400, problem.message, now: request.now))
        }
        let body = registration.request(clientAddress: request.peerHost() ?? "127.0.0.1")
        if let violation = Violation.checkServiceName(body.service) {
            return .respond(text(400, "Invalid service name: " + violation.message, now: request.now))
        }
        guard request.caller.grant.mayWrite(body.service) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(body.service))")))
        }
        // Consul's ids are the agent's: registering an id under another name moves it there.
        let elsewhere = names.services(ofInstance: registration.id).filter { $0 != body.service }
        for other in elsewhere where !request.caller.grant.mayWrite(other) {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(other)), "
                + "which holds the id \(Violation.quoted(registration.id))")))
        }
        if let refusal = native.admitRegistration(body, caller: request.caller) { return .respond(restyled(refusal)) }
        let outcome = service.register(body, now: request.now)
        native.noteRegistration(body, outcome: outcome)
        switch outcome {
        case .registered, .updated:
            for other in elsewhere {
                _ = service.deregister(InstanceReference(service: other, id: registration.id), now: request.now)
            }
            return done(now: request.now)
        case .conflict(let existing):
            return .respond(text(400, "the id \(Violation.quoted(registration.id)) is taken at \(Violation.quoted(existing))", now: request.now))
        case .invalid(let violation):
            return .respond(text(400, "Invalid service: " + violation.message, now: request.now))
        case .overLimit:
            return .respond(restyled(native.limitRefusal(outcome, service: body.service)))
        }
    }

    func deregister(_ request: RouteRequest) -> Handling {
        if case .failure(let refusal) = query(request) { return .respond(refusal.response) }
        guard request.caller.grant.writesSomething else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on some service")))
        }
        let id: String
        switch parameter(request, what: "service id") {
        case .success(let value): id = value
        case .failure(let refusal): return .respond(refusal.response)
        }
        guard let owner = names.service(ofInstance: id) else { return .respond(unknownService(id, now: request.now)) }
        guard request.caller.grant.mayWrite(owner) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(owner))")))
        }
        switch service.deregister(InstanceReference(service: owner, id: id), now: request.now) {
        case .done:
            maintenanceReasons[ConsulNames.Owner(service: owner, id: id)] = nil
            return done(now: request.now)
        case .invalid(let violation): return .respond(text(400, violation.message, now: request.now))
        case .unknownService, .unknownInstance, .unknownCheck: return .respond(unknownService(id, now: request.now))
        }
    }

    func unknownService(_ id: String, now: Instant) -> Response {
        text(404, "Unknown service ID \(Violation.quoted(id)). Ensure that the service ID is passed, not the service name.", now: now)
    }

    /// `PUT /v1/agent/service/maintenance/{id}?enable=true|false&reason=…`: maintenance is
    /// the native `OUT_OF_SERVICE` (out of discovery, kept registered).
    func maintenance(_ request: RouteRequest) -> Handling {
        let parsed: ConsulQuery, id: String
        switch inputs(request, parameter: "service ID") {
        case .success(let value): (parsed, id) = value
        case .failure(let refusal): return .respond(refusal.response)
        }
        guard request.caller.grant.writesSomething else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on some service")))
        }
        guard let enable = parsed.enable else {
            return .respond(text(400, "Missing value for enable", now: request.now))
        }
        guard let owner = names.service(ofInstance: id) else { return .respond(unknownService(id, now: request.now)) }
        guard request.caller.grant.mayWrite(owner) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(owner))")))
        }
        let key = ConsulNames.Owner(service: owner, id: id)
        let reference = InstanceReference(service: owner, id: id)
        if enable {
            if let reason = parsed.reason, !reason.isEmpty { maintenanceReasons[key] = reason } else { maintenanceReasons[key] = nil }
            _ = service.setStatus(reference, to: .outOfService, now: request.now)
        } else {
            maintenanceReasons[key] = nil
            if service.snapshot.instance(service: owner, id: id)?.status == .outOfService {
                _ = service.setStatus(reference, to: .up, now: request.now)
            }
        }
        return done(now: request.now)
    }

    /// A TTL check's report: `pass`, `warn`, `fail` (with `?note=`) or `update` (a body with
    /// `Status` and `Output`). It sets the check's status and counts as the instance's
    /// heartbeat, which restarts the check's TTL.
    func report(_ request: RouteRequest, _ fixed: CheckStatus?) -> Handling {
        let parsed: ConsulQuery, checkID: String
        switch inputs(request, parameter: "check ID") {
        case .success(let value): (parsed, checkID) = value
        case .failure(let refusal): return .respond(refusal.response)
        }
        guard request.caller.grant.writesSomething else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on some service")))
        }
        var status = fixed ?? .passing
        var output = parsed.note ?? ""
        if fixed == nil {
            switch ConsulCheckUpdate.decode(request.body) {
            case .success(let update):
                status = update.status
                output = update.output
            case .failure(let problem):
                return .respond(text(400, problem.message, now: request.now))
            }
        }
        guard let owner = names.owner(ofCheck: checkID),
              let check = service.snapshot.instance(service: owner.service, id: owner.id)?.checks.first(where: { $0.id == checkID }) else {
            return .respond(text(404, "Unknown check ID \(Violation.quoted(checkID)). Ensure that the check ID is passed, not the check name.",
                                 now: request.now))
        }
        guard request.caller.grant.mayWrite(owner.service) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(owner.service))")))
        }
        guard case .ttl = check.probe else {
            return .respond(text(500, "CheckID \(Violation.quoted(checkID)) does not have associated TTL", now: request.now))
        }
        switch service.setCheckStatus(service: owner.service, id: owner.id, check: checkID, to: status, heartbeat: true, now: request.now) {
        case .done:
            checker?.noteReport(service: owner.service, id: owner.id, check: checkID, output: String(output.prefix(HealthChecker.outputBytes)))
            return done(now: request.now)
        case .invalid(let violation):
            return .respond(text(400, violation.message, now: request.now))
        case .unknownService, .unknownInstance, .unknownCheck:
            return .respond(text(404, "Unknown check ID \(Violation.quoted(checkID))", now: request.now))
        }
    }

    // MARK: Reads

    func agentServices(_ request: RouteRequest) -> Handling {
        agentMap(request, cacheAs: "services") { [unowned self] name, instance, ambiguous, index, member in
            member(ambiguous ? name + "/" + instance.id : instance.id) { writeAgentService(instance, service: name, index: index, to: &$0) }
        }
    }

    func agentChecks(_ request: RouteRequest) -> Handling {
        agentMap(request) { [unowned self] name, instance, _, index, member in
            for check in consulChecks(of: instance, service: name) {
                member(check.id) { writeCheck(check, instance: instance, service: name, index: index, to: &$0) }
            }
        }
    }

    /// A JSON object over every instance the caller may read (blocking on the registry's
    /// index): `entries` adds members with the function it is given, a key and its value's writer.
    /// `cacheAs`: a name under which the rendering is kept while the registry's index holds
    /// (for answers that show no check results), per grant.
    private func agentMap(_ request: RouteRequest, cacheAs: String? = nil,
                          _ entries: @escaping (String, InstanceSnapshot, Bool, UInt64, (String, (inout JSONWriter) -> Void) -> Void) -> Void)
        -> Handling {
        let parsed: ConsulQuery
        switch query(request) {
        case .success(let value): parsed = value
        case .failure(let refusal): return .respond(refusal.response)
        }
        let grant = request.caller.grant
        let key = cacheAs.map { RenderingKey(service: "*" + $0, kind: .catalog, passing: false, tags: [grant.summary], nodeMatches: true) }
        return answer(parsed, service: nil, now: request.now, index: { [unowned self] _ in service.changeIndex }) { [unowned self] now, _ in
            let index = service.changeIndex
            if let key, let cached = renderings[key], cached.index == index { return self.json(cached.body, index: index, now: now) }
            var json = JSONWriter(capacity: 4096)
            json.raw("{")
            var first = true
            forEachInstance(grant: grant, now: now) { name, instance, ambiguous in
                entries(name, instance, ambiguous, index) { key, value in
                    if !first { json.raw(",") }
                    first = false
                    json.string(key)
                    json.raw(":")
                    value(&json)
                }
            }
            json.raw("}")
            if let key { keep(json.bytes, as: key, index: index, generation: 0) }
            return self.json(json.bytes, index: index, now: now)
        }
    }

    func agentSelf(_ request: RouteRequest) -> Handling {
        if case .failure(let refusal) = query(request) { return .respond(refusal.response) }
        var json = JSONWriter(capacity: 512)
        json.raw("{\"Config\":{\"Datacenter\":")
        json.string(settings.datacenter)
        json.raw(",\"PrimaryDatacenter\":")
        json.string(settings.datacenter)
        json.raw(",\"NodeName\":")
        json.string(settings.nodeName)
        json.raw(",\"NodeID\":")
        json.string(nodeID)
        json.raw(",\"Server\":true,\"Revision\":\"\",\"Version\":")
        json.string(RegistryVersion.text)
        json.raw(",\"Product\":\"service-registry\"},\"Member\":{\"Name\":")
        json.string(settings.nodeName)
        json.raw(",\"Addr\":")
        json.string(settings.nodeAddress)
        json.raw(",\"Port\":0,\"Tags\":{\"dc\":")
        json.string(settings.datacenter)
        json.raw(",\"role\":\"consul\"},\"Status\":1},\"Meta\":{\"consul-network-segment\":\"\"}}")
        return .respond(self.json(json.bytes, index: service.changeIndex, now: request.now))
    }

    // MARK: Rendering

    /// Calls `body` for every instance the caller may read, service by service (sorted),
    /// with whether its id is held by more than one service.
    func forEachInstance(grant: Grant, now: Instant, _ body: (String, InstanceSnapshot, Bool) -> Void) {
        var byService: [(String, [InstanceSnapshot])] = []
        service.read { registry in
            for name in registry.serviceNames.sorted() where grant.mayRead(name) {
                byService.append((name, registry.instances(ofService: name, now: now)))
            }
        }
        var counts: [String: Int] = [:]
        for (_, instances) in byService { for instance in instances { counts[instance.id, default: 0] += 1 } }
        for (name, instances) in byService {
            for instance in instances { body(name, instance, counts[instance.id, default: 0] > 1) }
        }
    }

    /// `Address` and `Port` of an instance as Consul shows them.
    static func endpoint(of address: String) -> (address: String, port: Int) {
        guard let endpoint = InstanceEndpoint.parse(address) else { return (address, 0) }
        return (endpoint.host, endpoint.port)
    }

    func writeAgentService(_ instance: InstanceSnapshot, service name: String, index: UInt64, to json: inout JSONWriter) {
        let endpoint = Self.endpoint(of: instance.address)
        json.raw("{\"ID\":")
        json.string(instance.id)
        json.raw(",\"Service\":")
        json.string(name)
        json.raw(",\"Tags\":")
        json.strings(instance.tags)
        json.raw(",\"Meta\":{")
        json.members(instance.metadata)
        json.raw("},\"Port\":")
        json.integer(endpoint.port)
        json.raw(",\"Address\":")
        json.string(endpoint.address)
        json.raw(",\"Weights\":{\"Passing\":")
        json.integer(instance.weight)
        json.raw(",\"Warning\":1},\"EnableTagOverride\":false,\"Datacenter\":")
        json.string(settings.datacenter)
        json.raw(",\"CreateIndex\":")
        json.integer(index)
        json.raw(",\"ModifyIndex\":")
        json.integer(index)
        json.raw("}")
    }

    /// A check as Consul's view shows it: the instance's own, or one standing for its status.
    struct ConsulCheck {
        let id: String
        let name: String
        let status: CheckStatus
        let notes: String
        let output: String
        let type: String
        let definition: HealthCheck?
    }

    func consulChecks(of instance: InstanceSnapshot, service name: String) -> [ConsulCheck] {
        var list: [ConsulCheck] = []
        switch instance.status {
        case .up:
            break
        case .outOfService:
            let reason = maintenanceReasons[ConsulNames.Owner(service: name, id: instance.id)]
            list.append(ConsulCheck(id: "_service_maintenance:" + instance.id, name: "Service Maintenance Mode", status: .critical,
                                    notes: reason ?? "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.",
                                    output: "", type: "maintenance", definition: nil))
        case .down, .starting:
            list.append(ConsulCheck(id: "_registry_status:" + instance.id, name: "Registry status", status: .critical, notes: "",
                                    output: "The instance's status in the registry is \(instance.status.rawValue)", type: "",
                                    definition: nil))
        }
        let results = instance.checks.isEmpty ? [:] : (checker?.results(service: name, id: instance.id).byCheck ?? [:])
        for check in instance.checks {
            let type: String
            switch check.probe {
            case .http: type = "http"
            case .tcp: type = "tcp"
            case .ttl: type = "ttl"
            }
            list.append(ConsulCheck(id: check.id, name: check.name, status: check.status, notes: "",
                                    output: results[check.id]?.output ?? "", type: type, definition: check))
        }
        return list
    }

    func writeCheck(_ check: ConsulCheck, instance: InstanceSnapshot?, service name: String, index: UInt64, to json: inout JSONWriter) {
        json.raw("{\"Node\":")
        json.string(settings.nodeName)
        json.raw(",\"CheckID\":")
        json.string(check.id)
        json.raw(",\"Name\":")
        json.string(check.name)
        json.raw(",\"Status\":\"")
        json.raw(check.status.rawValue)
        json.raw("\",\"Notes\":")
        json.string(check.notes)
        json.raw(",\"Output\":")
        json.string(check.output)
        json.raw(",\"ServiceID\":")
        json.string(instance?.id ?? "")
        json.raw(",\"ServiceName\":")
        json.string(instance == nil ? "" : name)
        json.raw(",\"ServiceTags\":")
        json.strings(instance?.tags ?? [])
        json.raw(",\"Type\":")
        json.string(check.type)
        var interval = ""
        var timeout = ""
        if let definition = check.definition, definition.isActive {
            interval = DurationText.format(definition.interval)
            timeout = DurationText.format(definition.timeout)
        }
        json.raw(",\"Interval\":")
        json.string(interval)
        json.raw(",\"Timeout\":")
        json.string(timeout)
        json.raw(",\"ExposedPort\":0,\"Definition\":{")
        if let definition = check.definition {
            switch definition.probe {
            case .http(let http):
                json.raw("\"HTTP\":")
                json.string(http.url)
                json.raw(",\"Method\":")
                json.string(http.method)
                // Header values may be credentials (the native /discover leaves them out too):
                // only their names are shown.
                json.raw(",\"Header\":{")
                var names: [String] = []
                for header in http.headers where !names.contains(header.key) { names.append(header.key) }
                for (position, header) in names.enumerated() {
                    if position > 0 { json.raw(",") }
                    json.string(header)
                    json.raw(":[\"(hidden)\"]")
                }
                json.raw("},\"TLSSkipVerify\":")
                json.raw(http.tlsSkipVerify ? "true" : "false")
                json.raw(",")
            case .tcp(let host, let port):
                json.raw("\"TCP\":")
                json.string(HealthCheck.hostPort(host: host, port: port))
                json.raw(",")
            case .ttl(let ttl):
                json.raw("\"TTL\":")
                json.string(DurationText.format(ttl))
                json.raw(",")
            }
            if definition.isActive {
                json.raw("\"Interval\":")
                json.string(interval)
                json.raw(",\"Timeout\":")
                json.string(timeout)
                json.raw(",")
            }
            json.raw("\"DeregisterCriticalServiceAfter\":")
            json.string(definition.deregisterAfter.map(DurationText.format) ?? "0s")
        }
        json.raw("},\"CreateIndex\":")
        json.integer(index)
        json.raw(",\"ModifyIndex\":")
        json.integer(index)
        json.raw("}")
    }
}
