@testable import Server
import Registry
import TestSupport

extension Handling {
    /// The answer, whether given at once or once committed (with no store, at once).
    var response: Response? {
        switch self {
        case .respond(let response), .respondWhenCommitted(let response): return response
        case .park, .stream: return nil
        }
    }
}

/// The native API with no sockets and no loop: the service over a memory store, the routes
/// in a table, and the end-of-turn step run after each request, as the loop would run it.
final class NativeHarness {
    let service: RegistryService
    let api: NativeAPI
    let table: RouteTable

    init(policy: RegistryPolicy, random: RandomSource = RandomSource(SplitMix64(state: 1)), maximumWait: Duration = .seconds(600)) {
        service = RegistryService(registry: Registry(policy: policy), store: MemoryStore(), logger: Logger(level: .error), loop: nil)
        api = NativeAPI(service: service, logger: Logger(level: .error), random: random, maximumWait: maximumWait)
        table = RouteTable.registry(api: api, service: service,
                                    consul: ConsulAPI(service: service, native: api, settings: ConsulAPI.Settings()),
                                    eureka: EurekaAPI(service: service, native: api, names: ServiceNameIndex(service: service)))
        api.prepareListing()
    }

    func handle(method: HTTPMethod, path target: String, body: String = "", now: Instant, wallClock: Int64 = 0) -> Handling {
        defer { service.endTurn(now: now) }
        return table.dispatch(method: method, target: target, body: body, now: now, wallClock: wallClock)
    }

    func handle(method: HTTPMethod, path: UnsafeBufferPointer<UInt8>, body: UnsafeBufferPointer<UInt8>, now: Instant) -> Handling {
        defer { service.endTurn(now: now) }
        return table.dispatch(method: method, path: path, query: nil, body: body, now: now, wallClock: now.nanoseconds).handling
    }

    var changeIndex: UInt64 { service.changeIndex }
}
