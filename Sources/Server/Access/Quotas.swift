import Access
import Registry

/// Quotas on the loop: request rates (a token bucket per ACL entry with
/// `requests_per_second`, and per client address with `--max-request-rate-per-client`) and
/// what an entry's namespace may hold (`max_instances`, `max_services` over the services its
/// `write` patterns match, whoever registered them). The registry-wide `--max-instances` and
/// `--max-services` are the core's (`RegistryPolicy`).
///
/// The holdings are counted from the registry's state, not from who sent each registration:
/// the counts are exact after a restart and the same on every replica of a cluster, and a
/// namespace is what an operator gives a team. Each account's counts follow the services'
/// instance counts change by change (`note`), so a check costs a dictionary lookup.
final class Quotas {
    /// A token bucket: `tokens` of `size`, refilled at `rate` per second.
    struct Bucket {
        var tokens: Double
        var last: Int64
    }

    /// One ACL entry with `max_instances` or `max_services`, and what its namespace holds.
    struct Account {
        let name: String
        let grant: Grant
        var instances = 0
        var services = 0
    }

    let clientRate: Double?
    private var byEntry: [String: Bucket] = [:]
    private var byClient: [String: Bucket] = [:]
    private var sweepAt = 1024
    private(set) var accounts: [Account] = []
    private var accountByName: [String: Int] = [:]
    /// Per service with a matching account: the instances it held when last seen, and the
    /// accounts whose namespace it is in.
    private var known: [String: (count: Int, accounts: [Int])] = [:]
    /// Refusals by limit (`token_rate`, `client_rate`, `token_instances`, `token_services`,
    /// `instances`, `services`), for `/metrics`.
    private(set) var refusals: [String: UInt64] = [:]

    init(clientRate: Double?) {
        self.clientRate = clientRate
    }

    static let anonymousName = "anonymous"

    // MARK: Rates

    /// Whether an ACL entry (or `anonymous`) has a `requests_per_second`.
    private var entryRates = false

    /// Whether any request rate is bounded: without one, requests skip `admitRate`.
    var boundsRates: Bool { entryRates || clientRate != nil }

    /// nil when the request may go on; else the 429 to send. `client` is asked only when the
    /// per-client rate is on.
    func admitRate(_ caller: Caller, client: () -> String?, now: Instant) -> Response? {
        let nanoseconds = now.nanoseconds
        if let rate = caller.grant.limits.requestsPerSecond {
            let name: String
            switch caller {
            case .token(let entry, _): name = entry
            case .anonymous: name = Self.anonymousName
            case .unknownToken: name = ""
            }
            if let wait = take(&byEntry, key: name, rate: rate, size: caller.grant.limits.bucketSize, now: nanoseconds) {
                let who = name == Self.anonymousName ? "requests without a token" : "the token \"\(name)\""
                return refusal("token_rate", wait: wait, message: "\(who) may send \(Self.number(rate)) requests a second "
                    + "(requests_per_second in the ACL file); retry in \(Self.number(wait)) s")
            }
        }
        if let clientRate, let address = client() {
            if byClient.count >= sweepAt { sweep(now: nanoseconds) }
            if let wait = take(&byClient, key: address, rate: clientRate, size: max(1, clientRate.rounded(.up)), now: nanoseconds) {
                return refusal("client_rate", wait: wait, message: "this client (\(address)) may send \(Self.number(clientRate)) requests "
                    + "a second (--max-request-rate-per-client); retry in \(Self.number(wait)) s")
            }
        }
        return nil
    }

    /// Takes a token from `key`'s bucket; returns the seconds until one is there if empty.
    private func take(_ buckets: inout [String: Bucket], key: String, rate: Double, size: Double, now: Int64) -> Double? {
        var bucket = buckets[key] ?? Bucket(tokens: size, last: now)
        bucket.tokens = min(size, bucket.tokens + Double(now - bucket.last) / 1e9 * rate)
        bucket.last = now
        defer { buckets[key] = bucket }
        guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
        bucket.tokens -= 1
        return nil
    }

    /// Forgets the clients whose bucket has refilled (they sent nothing for a while): the
    /// table holds the clients of the last few seconds, not every address ever seen.
    private func sweep(now: Int64) {
        guard let clientRate else { return }
        let size = max(1, clientRate.rounded(.up))
        byClient = byClient.filter { _, bucket in bucket.tokens + Double(now - bucket.last) / 1e9 * clientRate < size }
        sweepAt = max(1024, byClient.count * 2)
    }

    private func refusal(_ limit: String, wait: Double?, message: String) -> Response {
        refusals[limit, default: 0] += 1
        var response = Response.error(429, message)
        if let wait { response.retryAfter = Int(wait.rounded(.up)) > 0 ? Int(wait.rounded(.up)) : 1 }
        return response
    }

    func countRegistryLimit(_ limit: RegistryLimit) {
        switch limit {
        case .instances: refusals["instances", default: 0] += 1
        case .services: refusals["services", default: 0] += 1
        }
    }

    // MARK: Holdings

    /// Starts the accounts over from `policy` (at start and after each reload) and counts
    /// what their namespaces hold now.
    func rebuild(_ policy: AccessPolicy?, registry: Registry) {
        accounts = []
        accountByName = [:]
        known = [:]
        entryRates = policy.map { policy in
            policy.anonymous.limits.requestsPerSecond != nil || policy.entries.contains { $0.grant.limits.requestsPerSecond != nil }
        } ?? false
        guard let policy else { return }
        for entry in policy.entries where entry.grant.limits.boundsHoldings {
            accountByName[entry.name] = accounts.count
            accounts.append(Account(name: entry.name, grant: entry.grant))
        }
        if policy.anonymous.limits.boundsHoldings {
            accountByName[Self.anonymousName] = accounts.count
            accounts.append(Account(name: Self.anonymousName, grant: policy.anonymous))
        }
        guard tracksHoldings else { return }
        for name in registry.serviceNames { note(name, registry: registry) }
    }

    /// Whether an ACL entry bounds what its namespace holds: without one, registrations and
    /// changes need no bookkeeping here.
    var tracksHoldings: Bool { !accounts.isEmpty }

    /// The service's instance count may have changed: the accounts it belongs to follow.
    func note(_ service: String, registry: Registry) {
        guard tracksHoldings else { return }
        let count = registry.instanceCount(ofService: service)
        let before = known[service] ?? (0, accounts.indices.filter { accounts[$0].grant.mayWrite(service) })
        guard count != before.count else { return }
        for index in before.accounts {
            accounts[index].instances += count - before.count
            if before.count == 0 { accounts[index].services += 1 }
            if count == 0 { accounts[index].services -= 1 }
        }
        known[service] = count == 0 ? nil : (count, before.accounts)
    }

    /// nil when `caller` may register instance `id` of `service`; else the 429 naming the
    /// limit. Only a new instance (or one of a new service) can pass a limit.
    func holdingRefusal(_ caller: Caller, service: String, id: String, registry: Registry) -> Response? {
        let name: String
        switch caller {
        case .token(let entry, _): name = entry
        case .anonymous: name = Self.anonymousName
        case .unknownToken: return nil
        }
        guard let index = accountByName[name] else { return nil }
        let account = accounts[index]
        let who = name == Self.anonymousName ? "requests without a token" : "the token \"\(name)\""
        if let limit = account.grant.limits.maxInstances, account.instances >= limit, !registry.holds(service: service, id: id) {
            return refusal("token_instances", wait: nil, message: "the services \(who) may write hold \(account.instances) instances, "
                + "its limit (max_instances \(limit) in the ACL file); nothing was changed. Deregister instances that are gone")
        }
        if let limit = account.grant.limits.maxServices, account.services >= limit, registry.instanceCount(ofService: service) == 0 {
            return refusal("token_services", wait: nil, message: "\(who) may write \(limit) services that hold instances "
                + "(max_services in the ACL file), and \(Violation.quoted(service)) would be one more; nothing was changed")
        }
        return nil
    }

    private static func number(_ value: Double) -> String {
        value.rounded() == value ? String(Int(value)) : String((value * 100).rounded() / 100)
    }
}
