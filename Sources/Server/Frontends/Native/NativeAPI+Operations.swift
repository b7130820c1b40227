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
