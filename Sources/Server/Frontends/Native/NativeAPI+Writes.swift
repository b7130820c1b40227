import Access
import Registry
import RegistryWire

/// `POST /register`, `/heartbeat`, `/deregister` and `/status`: decode the body (its one
/// definition is RegistryWire's), ask the service, and say how it went. A change is
/// answered once committed (`Handling.respondWhenCommitted`); a refusal at once.
extension NativeAPI {
    enum InstanceWrite {
        case heartbeat, deregister, status
    }

    func register(_ request: RouteRequest) -> Handling {
        let body: RegistrationRequest
        switch RegistrationRequest.decode(request.body) {
        case .success(let decoded): body = decoded
        case .failure(let problem): return .respond(.error(400, problem.message))
        }
        guard request.caller.grant.mayWrite(body.service) else {
            return .respond(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(body.service))"))
        }
        if let refusal = admitRegistration(body, caller: request.caller) { return .respond(refusal) }
        let outcome = service.register(body, now: request.now)
        noteRegistration(body, outcome: outcome)
        switch outcome {
        case .registered:
            return .respondWhenCommitted(.status(201, "registered", "Service \(body.service) registered at \(body.address)"))
        case .updated:
            return .respondWhenCommitted(.status(200, "updated", "Service \(body.service) at \(body.address) heartbeat updated"))
        case .conflict(let existing):
            return .respond(.error(409, "\(Violation.quoted(body.address)) is the id of another instance of \(body.service), registered "
                + "at \(Violation.quoted(existing)); nothing was changed. To change that instance's address send its \"id\" too; "
                + "otherwise give this instance an \"id\" of its own"))
        case .invalid(let violation):
            return .respond(.error(400, violation.message))
        case .overLimit:
            return .respond(limitRefusal(outcome, service: body.service))
        }
    }

    /// What every front end's registration passes before the core judges it: the caller's
    /// namespace holdings (an ACL entry's `max_instances`, `max_services`). Nil: admitted.
    func admitRegistration(_ body: RegistrationRequest, caller: Caller) -> Response? {
        guard let holdings = quotas.flatMap({ $0.tracksHoldings ? $0 : nil }) else { return nil }
        return service.read { holdings.holdingRefusal(caller, service: body.service, id: body.id ?? body.address, registry: $0) }
    }

    /// Keeps the holdings and the limit counters up to date after a registration.
    func noteRegistration(_ body: RegistrationRequest, outcome: RegisterOutcome) {
        switch outcome {
        case .registered:
            if let holdings = quotas.flatMap({ $0.tracksHoldings ? $0 : nil }) { service.read { holdings.note(body.service, registry: $0) } }
        case .overLimit(let limit): quotas?.countRegistryLimit(limit)
        default: break
        }
    }

    /// The 429 of a registration over `--max-instances` or `--max-services`.
    func limitRefusal(_ outcome: RegisterOutcome, service name: String) -> Response {
        switch outcome {
        case .overLimit(.services(let limit)):
            return .error(429, "the registry holds \(limit) services, its limit (--max-services), and \(name) would be "
                + "a new one; nothing was changed. Deregister services that are gone, or raise the limit")
        case .overLimit(.instances(let limit)):
            return .error(429, "the registry holds \(limit) instances, its limit (--max-instances); nothing was changed. "
                + "Deregister instances that are gone, or raise the limit")
        default:
            return .error(500, "internal error: \(outcome) is not a limit")
        }
    }

    func instanceWrite(_ request: RouteRequest, _ write: InstanceWrite) -> Handling {
        let reference: InstanceReference
        switch InstanceReference.decode(request.body, statusRequired: write == .status, statusAllowed: write != .deregister) {
        case .success(let decoded): reference = decoded
        case .failure(let problem): return .respond(.error(400, problem.message))
        }
        let service = reference.service
        let id = reference.name
        // Before the instance is looked up: a caller that may not write the service learns
        // nothing of what it holds.
        guard request.caller.grant.mayWrite(service) else {
            return .respond(AccessControl.denial(request.caller, needs: "write on service \(Violation.quoted(service))"))
        }
        let outcome: InstanceOutcome
        switch write {
        case .heartbeat: outcome = self.service.heartbeat(reference, now: request.now)
        case .deregister: outcome = self.service.deregister(reference, now: request.now)
        case .status: outcome = self.service.setStatus(reference, to: reference.status ?? .up, now: request.now)
        }
        switch outcome {
        case .done:
            switch write {
            case .heartbeat:
                return .respondWhenCommitted(Response(status: 200, body: Self.heartbeatRenewedBody))
            case .deregister:
                return .respondWhenCommitted(.status(200, "deregistered", "Service \(service) at \(id) deregistered"))
            case .status:
                let status = reference.status ?? .up
                return .respondWhenCommitted(.status(200, "ok", "Status of \(service) at \(id) is now \(status.rawValue)"))
            }
        case .unknownService:
            return .respond(.status(404, "not_found", write == .heartbeat
                ? "Service \(service) is not registered; register it first" : "Service \(service) is not registered"))
        case .unknownInstance:
            return .respond(.status(404, "not_found", write == .heartbeat
                ? "Service \(service) has no instance at \(id); register it first" : "Service \(service) has no instance at \(id)"))
        case .unknownCheck:
            // These writes name no check.
            return .respond(.status(404, "not_found", "Service \(service) has no instance at \(id)"))
        case .invalid(let violation):
            return .respond(.error(400, violation.message))
        }
    }
}
