import Access
import JSON

/// `GET /health`, `/ready` and `/metrics`: what probes and Prometheus ask.
extension NativeAPI {
    func health(_ request: RouteRequest) -> Handling {
        var json = JSONWriter()
        json.raw("{\"status\":\"healthy\",\"timestamp\":")
        json.timestamp(unixNanoseconds: request.wallClock)
        json.raw("}")
        return .respond(Response(status: 200, body: json.bytes))
    }

    func ready() -> Handling {
        if service.isDraining {
            return .respond(.status(503, "draining", "the registry is shutting down; send requests to another instance"))
        }
        if let cluster, !cluster.store.isLoaded {
            return .respond(.status(503, "loading", "this replica has not yet read the registry from etcd; it serves once it has"))
        }
        return .respond(.status(200, "ready", "serving"))
    }

    func metrics() -> Handling {
        var response = Response(status: 200, body: metricsExposition?() ?? [])
        response.contentType = "text/plain; version=0.0.4; charset=utf-8"
        return .respond(response)
    }
}

/// `GET /access`: what the caller's token (or no token) may do, so that a client (the
/// dashboard, a script) can say so before it tries. Never echoes the token.
extension NativeAPI {
    func access(_ request: RouteRequest) -> Handling {
        let caller = request.caller
        if case .unknownToken = caller {
            return .respond(AccessControl.denial(caller, needs: "to be known to be looked up"))
        }
        let grant = caller.grant
        var json = JSONWriter()
        json.raw(aclInForce() ? "{\"acl\":true,\"caller\":" : "{\"acl\":false,\"caller\":")
        switch caller {
        case .token(let name, _):
            json.raw("\"token\",\"name\":")
            json.string(name)
        default:
            json.raw("\"anonymous\",\"name\":null")
        }
        json.raw(",\"read\":")
        json.strings(grant.isOperator ? ["*"] : (grant.read + grant.write).map(\.text).uniquedInOrder())
        json.raw(",\"write\":")
        json.strings(grant.isOperator ? ["*"] : grant.write.map(\.text))
        json.raw(grant.isOperator ? ",\"operator\":true" : ",\"operator\":false")
        json.raw(grant.readsEverything ? ",\"reads_everything\":true" : ",\"reads_everything\":false")
        json.raw(grant.writesSomething ? ",\"writes_something\":true}" : ",\"writes_something\":false}")
        return .respond(Response(status: 200, body: json.bytes))
    }
}

extension Array where Element: Hashable {
    /// The elements without repeats, first occurrences kept in order.
    func uniquedInOrder() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
