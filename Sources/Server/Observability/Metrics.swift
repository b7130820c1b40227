#if canImport(Glibc)
import Glibc
#endif
import DNS
import Registry
import TLS
import JSON
import HTTPParsing

/// Counts requests and renders `/metrics` in the Prometheus text format (version 0.0.4).
///
/// Requests are counted by route template, method and status; their handling time goes
/// into one histogram per route. Requests held on purpose (long-polls, streams) are counted
/// when admitted but kept out of the histogram, whose figures they would swamp.
/// Everything else is read when scraped: the registry's counts, the watchers, the
/// persistence state, and the process's own figures from `/proc`.
final class Metrics {
    /// Upper bounds in seconds: from 100 µs (a cached discover) to 2.5 s.
    static let bucketBounds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    /// Counts by route, method and status, packed into one integer key: the hot path hashes
    /// one `Int` per request and allocates nothing.
    private var requests: [Int: UInt64] = [:]
    /// Per route: histogram buckets (the last is +Inf), count and sum, updated in place.
    private var buckets: [[UInt64]]
    private var durationSums: [Double]
    /// The route templates, by the route numbers of the `RouteTable`.
    private let routeLabels: [String]
    private let startedAt = Double(Clock.wallNow()) / 1e9

    /// What the server knows at scrape time, beside the requests counted here.
    struct Figures {
        let service: RegistryService
        var longPolls = 0
        var streams = 0
        var store: StoreStats?
        var transport = Transport.Stats()
        var cluster: Cluster?
        var access: AccessControl?
        var certificates: Certificates?
        var quotas: Quotas?
        var config: Config?
        var checker: HealthChecker?
        var dns: DNSServer?
    }

    init(routeLabels: [String]) {
        self.routeLabels = routeLabels
        buckets = [[UInt64]](repeating: [UInt64](repeating: 0, count: Metrics.bucketBounds.count + 1), count: routeLabels.count)
        durationSums = [Double](repeating: 0, count: routeLabels.count)
    }

    private static func key(_ route: Int, _ method: HTTPMethod, _ status: Int32) -> Int {
        (route * 16 + method.rawValue) * 1000 + Int(status)
    }

    /// Counts an answered request. `seconds` is nil for requests held on purpose.
    func countRequest(route: Int, method: HTTPMethod, status: Int32, seconds: Double?) {
        requests[Self.key(route, method, status), default: 0] += 1
        guard let seconds else { return }
        let bucket = Self.bucketBounds.firstIndex { seconds <= $0 } ?? Self.bucketBounds.count
        buckets[route][bucket] += 1
        durationSums[route] += seconds
    }

    func exposition(_ figures: Figures) -> [UInt8] {
        let service = figures.service
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ value: String) {
            out += "\(name) \(value)\n"
        }
        /// A family of one sample without labels.
        func single(_ name: String, _ type: String, _ help: String, _ value: String) {
            family(name, type, help)
            sample(name, value)
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: String) {
            if labels.isEmpty {
                out += "\(name) \(value)\n"
            } else {
                out += "\(name){" + labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "} \(value)\n"
            }
        }

        family("registry_http_requests_total", "counter", "HTTP requests answered, by route template, method and status code.")
        for (key, count) in requests.sorted(by: { $0.key < $1.key }) {
            let status = key % 1000
            let route = routeLabels[min(key / 1000 / 16, routeLabels.count - 1)]
            let method = HTTPMethod(rawValue: key / 1000 % 16) ?? .get
            sample("registry_http_requests_total", [("route", route), ("method", method.name), ("code", String(status))],
                   String(count))
        }
        for (status, count) in Transport.answeredByLibevent.sorted(by: { $0.key < $1.key }) {
            sample("registry_http_requests_total", [("route", "unparsed"), ("method", "unknown"), ("code", String(status))], String(count))
        }

        family("registry_http_request_duration_seconds", "histogram",
               "Time from receiving a request to handing its answer to libevent (held long-polls and streams excluded).")
        for (number, route) in routeLabels.enumerated() {
            let counts = buckets[number]
            let total = counts.reduce(0, +)
            guard total > 0 else { continue }
            var cumulative: UInt64 = 0
            for (index, bound) in Self.bucketBounds.enumerated() {
                cumulative += counts[index]
                sample("registry_http_request_duration_seconds_bucket", [("route", route), ("le", format(bound))],
                       String(cumulative))
            }
            sample("registry_http_request_duration_seconds_bucket", [("route", route), ("le", "+Inf")], String(total))
            sample("registry_http_request_duration_seconds_sum", [("route", route)], format(durationSums[number]))
            sample("registry_http_request_duration_seconds_count", [("route", route)], String(total))
        }

        family("registry_instances", "gauge", "Registered instances, by status (overdue ones not yet removed included).")
        let counts = service.instanceCountsByStatus
        for status in InstanceStatus.allCases {
            sample("registry_instances", [("status", status.rawValue)], String(counts[status] ?? 0))
        }
        single("registry_services", "gauge", "Services with at least one instance.", String(service.serviceCount))
        single("registry_change_index", "gauge", "The registry's change index (X-Registry-Index of /services).", String(service.changeIndex))
        single("registry_registrations_total", "counter", "Instances registered (new ones; re-registrations are updates).", String(service.registrations))
        single("registry_deregistrations_total", "counter", "Instances deregistered by request.", String(service.deregistrations))
        single("registry_expirations_total", "counter", "Instances removed because their heartbeats stopped.", String(service.expirations))

        family("registry_watchers", "gauge", "Requests held open for changes, by kind.")
        sample("registry_watchers", [("kind", "long_poll")], String(figures.longPolls))
        sample("registry_watchers", [("kind", "stream")], String(figures.streams))
        let transport = figures.transport
        single("registry_open_connections", "gauge", "Client connections open.", String(transport.openConnections))
        single("registry_connections_refused_total", "counter", "Connections answered 503 and closed because --max-connections were open.", String(transport.refusedConnections))
        single("registry_accept_errors_total", "counter", "accept() failures, most often out of file descriptors (accepting pauses briefly after each).", String(transport.acceptErrors))
        single("registry_http_framing_refusals_total", "counter", "Requests refused for breaking HTTP/1.1 framing rules before routing (smuggling attempts, bad headers, chunked bodies).", String(transport.refusedRequests))
        single("registry_output_bytes", "gauge", "Bytes of answers waiting in output buffers for slow readers, each buffer counted once.", String(OutputMemory.total))
        single("registry_connections_shed_total", "counter", "Connections closed because waiting answers passed --max-output-bytes.", String(transport.shedConnections))
        family("registry_transport_writes_total", "counter", "Answers written to the socket by the transport as soon as they were made: whole, or only partly (the rest waits for the socket).")
        sample("registry_transport_writes_total", [("outcome", "whole")], String(transport.completeWrites))
        sample("registry_transport_writes_total", [("outcome", "partial")], String(transport.partialWrites))
        family("registry_http_timeouts_total", "counter", "Connections closed because a request's head or body did not arrive in time.")
        sample("registry_http_timeouts_total", [("phase", "header")], String(transport.headerTimeouts))
        sample("registry_http_timeouts_total", [("phase", "body")], String(transport.bodyTimeouts))

        single("registry_persistence_enabled", "gauge", "1 when changes are kept in a data directory, 0 with --in-memory.", figures.store == nil ? "0" : "1")
        if let stats = figures.store {
            single("registry_persistence_log_bytes", "gauge", "Length of the current log file.", String(stats.logBytes))
            single("registry_persistence_unsynced_bytes", "gauge", "Bytes written to the log but not yet covered by an fsync: what a machine crash could lose.", String(stats.unsyncedBytes))
            single("registry_persistence_held_writes", "gauge", "Writes waiting for their change to reach the disk (--fsync always).", String(service.waitingWriters))
            single("registry_persistence_write_errors_total", "counter", "Log writes that failed (their changes were answered 503 and not applied).", String(stats.writeErrors))
            single("registry_persistence_snapshots_total", "counter", "Snapshots written.", String(stats.snapshots))
            single("registry_persistence_snapshot_failures_total", "counter", "Snapshots that failed (the log keeps every change meanwhile).", String(stats.snapshotFailures))
        }

        if let access = figures.access {
            single("registry_acl_enabled", "gauge", "1 when an ACL file (--acl-file) is in force, 0 when the registry is open.",
                   access.isOpen ? "0" : "1")
            single("registry_acl_reloads_total", "counter", "ACL file reloads (SIGHUP) that took effect.", String(access.reloads))
            single("registry_acl_reload_failures_total", "counter", "ACL file reloads refused (the file was broken; the rules before stay).",
                   String(access.failedReloads))
            family("registry_access_denied_total", "counter",
                   "Requests refused for want of a permission, by route template and reason (no_token, unknown_token, forbidden).")
            for (key, count) in access.denials.sorted(by: { ($0.key.route, $0.key.reason) < ($1.key.route, $1.key.reason) }) {
                sample("registry_access_denied_total", [("route", routeLabels[key.route]), ("reason", key.reason)], String(count))
            }
        }
        if let config = figures.config {
            single("registry_max_instances", "gauge", "Instances the registry holds at most (--max-instances).", String(config.maxInstances))
            single("registry_max_services", "gauge", "Services the registry holds at most (--max-services).", String(config.maxServices))
            single("registry_max_request_rate_per_client", "gauge", "Requests a second one client address may send (--max-request-rate-per-client; 0: no limit).",
                   config.maxRequestRatePerClient.map { String($0) } ?? "0")
        }
        if let quotas = figures.quotas {
            family("registry_quota_refusals_total", "counter",
                   "Requests answered 429 by a limit: instances, services (the registry's), token_instances, token_services (an ACL entry's namespace), token_rate, client_rate.")
            for limit in ["instances", "services", "token_instances", "token_services", "token_rate", "client_rate"] {
                sample("registry_quota_refusals_total", [("limit", limit)], String(quotas.refusals[limit] ?? 0))
            }
            family("registry_quota_instances", "gauge", "Instances held by the services an ACL entry with max_instances or max_services may write.")
            for account in quotas.accounts { sample("registry_quota_instances", [("token", account.name)], String(account.instances)) }
            family("registry_quota_services", "gauge", "Services with instances among those an ACL entry with max_instances or max_services may write.")
            for account in quotas.accounts { sample("registry_quota_services", [("token", account.name)], String(account.services)) }
        }
        single("registry_tls_enabled", "gauge", "1 when the HTTPS listener (--tls-cert) is on.", figures.certificates == nil ? "0" : "1")
        if let certificates = figures.certificates {
            single("registry_tls_certificate_expiry_timestamp_seconds", "gauge", "When the server certificate in use stops being valid (seconds since 1970).",
                   String(certificates.current.certificateNotAfter))
            single("registry_tls_handshakes_total", "counter", "TLS handshakes completed.", String(TLSEvents.handshakes))
            family("registry_tls_handshakes_refused_total", "counter",
                   "TLS handshakes the server ended with an alert, by reason (the client certificate check's, or the alert's).")
            for (reason, count) in TLSEvents.refusals.sorted(by: { $0.key < $1.key }) {
                sample("registry_tls_handshakes_refused_total", [("reason", reason)], String(count))
            }
            single("registry_tls_reloads_total", "counter", "Certificate reloads (SIGHUP) that took effect.", String(certificates.reloads))
            single("registry_tls_reload_failures_total", "counter", "Certificate reloads refused (a file was bad; the certificates before stay).",
                   String(certificates.failedReloads))
        }
        single("registry_cluster_mode", "gauge", "1 in cluster mode (--etcd), 0 for a single registry.", figures.cluster == nil ? "0" : "1")
        if let cluster = figures.cluster {
            let stats = cluster.store.stats
            let now = Clock.monotonicNow()
            single("registry_cluster_leader", "gauge", "1 while this replica leads (it alone expires instances).", cluster.isLeader ? "1" : "0")
            single("registry_cluster_known_leader", "gauge", "1 while this replica knows a leader and has heard from etcd's quorum within the lease TTL.",
                   cluster.leadership.knowsLeader ? "1" : "0")
            single("registry_cluster_leader_changes_total", "counter", "Leaders this replica has seen take over (itself included).", String(cluster.leadership.leaderChanges))
            single("registry_etcd_last_contact_seconds", "gauge", "Seconds since etcd's quorum last answered this replica (-1: never).",
                   cluster.store.lastContact.map { format(Double(now.duration(since: $0).wholeNanoseconds) / 1e9) } ?? "-1")
            single("registry_etcd_applied_revision", "gauge", "The etcd revision this replica's mirror has applied.", String(cluster.store.appliedRevision))
            single("registry_cluster_mirror_lag_revisions", "gauge", "etcd's newest revision (as its members last said, every 5 s) less the one applied here.",
                   String(max(0, cluster.newestKnownRevision - cluster.store.appliedRevision)))
            family("registry_etcd_transaction_duration_seconds", "summary", "etcd transactions this replica sent (a loop turn's writes go in one).")
            sample("registry_etcd_transaction_duration_seconds_sum", format(stats.transactionSeconds))
            sample("registry_etcd_transaction_duration_seconds_count", String(stats.transactions))
            single("registry_etcd_proposals_total", "counter", "Instance changes sent to etcd in those transactions.", String(stats.operations))
            single("registry_etcd_write_conflicts_total", "counter", "Transactions refused because an instance changed through another replica first (their writes are judged again).", String(stats.conflicts))
            single("registry_etcd_write_failures_total", "counter", "Transactions etcd did not take (their writes were answered 503).", String(stats.failures))
            single("registry_etcd_watch_restarts_total", "counter", "Times the watch stream ended and was opened again.", String(stats.watchRestarts))
            single("registry_etcd_reloads_total", "counter", "Whole reads of the store after etcd compacted past the watch.", String(stats.reloads))
            family("registry_cluster_heartbeat_reports_total", "counter", "Follower reports of the heartbeats it took, sent to the leader.")
            sample("registry_cluster_heartbeat_reports_total", [("outcome", "sent")], String(cluster.relay.reportsSent))
            sample("registry_cluster_heartbeat_reports_total", [("outcome", "failed")], String(cluster.relay.reportFailures))
        }

        if let checker = figures.checker {
            family("registry_checks", "gauge", "Health checks this replica follows, by verdict (it runs them while it leads).")
            let counts = checker.countsByStatus
            for status in CheckStatus.allCases { sample("registry_checks", [("status", status.rawValue)], String(counts[status] ?? 0)) }
            single("registry_checks_in_flight", "gauge", "HTTP and TCP checks running now.", String(checker.inFlight))
            single("registry_checks_queued", "gauge", "Checks due but waiting for a place (--max-checks-in-flight).", String(checker.queued))
            family("registry_check_runs_total", "counter", "Check runs finished, by verdict.")
            for status in CheckStatus.allCases { sample("registry_check_runs_total", [("status", status.rawValue)], String(checker.completed[status] ?? 0)) }
            single("registry_check_runs_skipped_total", "counter", "Runs not started because the one before was still going or waiting.", String(checker.skipped))
            single("registry_check_refusals_total", "counter", "Runs refused because the address is outside --check-allow.", String(checker.refused))
            single("registry_check_deregistrations_total", "counter", "Instances deregistered after a check stayed critical for its deregister_after.",
                   String(checker.deregistered))
            family("registry_check_duration_seconds", "histogram", "How long check runs took, timeouts included.")
            var cumulative: UInt64 = 0
            for (index, bound) in HealthChecker.latencyBounds.enumerated() {
                cumulative += checker.latencyBuckets[index]
                sample("registry_check_duration_seconds_bucket", [("le", format(bound))], String(cumulative))
            }
            cumulative += checker.latencyBuckets[HealthChecker.latencyBounds.count]
            sample("registry_check_duration_seconds_bucket", [("le", "+Inf")], String(cumulative))
            sample("registry_check_duration_seconds_sum", format(checker.latencySum))
            sample("registry_check_duration_seconds_count", String(cumulative))
        }

        if let dns = figures.dns {
            family("registry_dns_responses_total", "counter", "DNS responses sent, by response code.")
            for code in [DNSResponseCode.noError, .nameError, .refused, .formatError, .notImplemented, .serverFailure] {
                sample("registry_dns_responses_total", [("rcode", code.name)], String(dns.answered[code] ?? 0))
            }
            single("registry_dns_truncated_total", "counter", "DNS answers cut to fit a UDP datagram (TC set; the client asks again over TCP).",
                   String(dns.truncated))
            single("registry_dns_dropped_total", "counter", "DNS messages not answered: not a query, too short, unsent, or a TCP connection over the cap.",
                   String(dns.dropped))
            single("registry_dns_tcp_queries_total", "counter", "DNS queries received over TCP.", String(dns.tcpQueries))
            single("registry_dns_tcp_connections", "gauge", "DNS TCP connections open now.", String(dns.tcpConnections))
        }

        let process = ProcessFigures.read()
        single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", String(process.residentBytes))
        single("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", String(process.virtualBytes))
        single("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.", format(process.cpuSeconds))
        single("process_open_fds", "gauge", "Number of open file descriptors.", String(process.openDescriptors))
        single("process_max_fds", "gauge", "Maximum number of open file descriptors.", String(process.maxDescriptors))
        single("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", format(startedAt))
        return Array(out.utf8)
    }

    private func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    private func escapeLabel(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }
}
