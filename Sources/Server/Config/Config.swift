import DNS
import Etcd
import Registry
import HTTPParsing

/// Everything the server is told at start-up, built once from flags and the environment
/// (flags win) and passed down; nothing reads it from a global.
struct Config: Equatable {
    enum LogLevel: Int, Comparable, CaseIterable {
        case debug, info, warn, error

        static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

        var name: String {
            switch self {
            case .debug: return "debug"
            case .info: return "info"
            case .warn: return "warn"
            case .error: return "error"
            }
        }
    }

    var host = "0.0.0.0"
    var port: UInt16 = 5001
    /// `--port off`: no plain HTTP listener (TLS only).
    var plainListener = true
    /// The TLS listener (`--tls-cert` and `--tls-key`): its port, address and files.
    var tlsPort: UInt16 = 5443
    /// nil: the same address as `--host`.
    var tlsHost: String?
    var tlsCertificate: String?
    var tlsKey: String?
    /// With a client CA, the TLS listener requires client certificates signed by it.
    var tlsClientCA: String?
    var tlsEnabled: Bool { tlsCertificate != nil }
    var heartbeatTimeout: Duration = .seconds(30)
    var maxBodyBytes = 64 * 1024
    /// Answers queued for slow readers, counted once however many share them (`OutputMemory`).
    var maxOutputBytes = 256 * 1024 * 1024
    var maxHeaderBytes = 8 * 1024
    /// How long a connection may sit idle between requests, or a write stall, before it is
    /// closed.
    var idleTimeout: Duration = .seconds(60)
    /// How long a request's line and headers may take to arrive, from their first byte.
    var headerTimeout: Duration = .seconds(10)
    /// How long a request's body may take to arrive, from the end of its headers.
    var bodyTimeout: Duration = .seconds(10)
    /// Client connections open at once; nil means sized to the descriptor limit at start.
    var maxConnections: Int?
    /// The longest a blocking query is held; longer waits are cut to it.
    var maxWait: Duration = .seconds(600)
    /// Web origins whose pages may write to the registry and read its answers (CORS).
    var allowedOrigins: [String] = []
    /// `--acl-file`: tokens and what they may do; nil leaves the registry open.
    var aclFile: String?
    /// `--replica-token-file`: the token a replica sends to the others (cluster mode with an
    /// ACL file), read at start.
    var replicaTokenFile: String?
    /// What the registry holds at most (`RegistryPolicy.maxInstances`, `maxServices`).
    var maxInstances = 2_000_000
    var maxServices = 500_000
    /// Requests a second one client address may send (`--max-request-rate-per-client`); nil: no limit.
    var maxRequestRatePerClient: Double?
    /// Long-polls and streams held at once, in total and per client address (0: no limit).
    var maxWatchers = 50_000
    var maxWatchersPerClient = 0
    /// `--checks`: whether the registry runs HTTP and TCP checks (TTL checks, reported by
    /// the instances, apply either way).
    var activeChecks = true
    /// `--check-allow`: the networks checks may connect to (default all).
    var checkAllow = NetworkAllowList.everything
    /// `--max-checks-in-flight`: checks running at once; more wait their turn, in order.
    var maxChecksInFlight = 512
    /// `--consul-port`: a second plain listener for Consul's clients at their default port
    /// (8500); nil: Consul's API only on the main listeners.
    var consulPort: UInt16?
    /// `--consul-datacenter`, `--consul-node`: the datacenter and node Consul's view names.
    var consulDatacenter = "dc1"
    var consulNode: String?
    /// `--dns-port`: DNS over UDP and TCP on this port (Consul's is 8600); nil: no DNS.
    var dnsPort: UInt16?
    /// `--dns-host`: the DNS sockets' address (default: `--host`).
    var dnsHost: String?
    /// `--dns-domain`: the domain the registry answers for (`consul.` too, always).
    var dnsDomain = "registry."
    /// `--dns-ttl`: seconds resolvers may keep an answer (Consul's default, 0: ask every time).
    var dnsTTL: UInt32 = 0
    var logLevel: LogLevel = .info
    var logFormat: Logger.Format = .text
    /// One line per answered request (`--access-log`); `--log-level debug` turns it on too.
    var accessLog = false
    var accessLogEnabled: Bool { accessLog || logLevel == .debug }
    /// After a stop signal: how long `/ready` says 503 while everything else is still
    /// served, so that load balancers stop sending before the listener closes.
    var shutdownGrace: Duration = .seconds(5)
    var minimumTTL: Duration = .seconds(1)
    var maximumTTL: Duration = .seconds(3600)
    /// Off when nil; see `Registry` for the rule.
    var expiryProtection: Double?
    /// Where registrations are kept across restarts; nil means the default, `registry-data`
    /// in the working directory.
    var dataDirectory: String?
    /// Keep nothing on disk (`--in-memory`).
    var inMemory = false
    var fsync: FsyncPolicy = .everysec
    /// Start even though the data is damaged, keeping every valid record.
    var repair = false
    /// The log is snapshotted once it is at least this long and twice the live state.
    var snapshotMinimumLogBytes = 8 << 20

    static let defaultDataDirectory = "registry-data"

    /// Cluster mode (`--etcd`): the members' client URLs; nil for a single registry.
    var etcd: [EtcdEndpoint]?
    /// Keeps several registries apart in one etcd: every key starts with it.
    var etcdPrefix = "/service-registry/"
    /// How this replica names itself to the others; nil: host name and port.
    var replicaName: String?
    /// How the other replicas reach this one; nil: http://HOST-NAME:PORT.
    var advertiseURL: String?
    /// The leader's etcd lease: a replica that dies is replaced within about this long.
    var leaseTTL = 3
    /// How long one request to an etcd member may take before the next member is tried.
    var etcdTimeout: Duration = .seconds(3)
    /// etcd's TLS (for https:// members) and authentication.
    var etcdCACert: String?
    var etcdCert: String?
    var etcdKey: String?
    var etcdUser: String?
    var etcdPasswordFile: String?
    /// The CA of the other replicas' HTTPS certificates (https:// advertise URLs).
    var replicaCACert: String?
    /// Whether `--data-dir` (or its variable) was given, which cluster mode refuses.
    var dataDirectoryGiven = false

    /// When a change is on disk, relative to its acknowledgement.
    enum FsyncPolicy: String, CaseIterable {
        /// Acknowledged after its fsync (group commit: one fsync for every change waiting).
        case always
        /// Acknowledged once written to the file; fsynced at least once a second.
        case everysec
        /// Acknowledged once written to the file; the kernel writes it back when it likes.
        case never
    }

    /// The data directory in use, or nil when persistence is off.
    var persistenceDirectory: String? {
        inMemory || etcd != nil ? nil : (dataDirectory ?? Self.defaultDataDirectory)
    }

    /// What went wrong with the command line or the environment, for a one-line message.
    struct Problem: Error, Equatable {
        let message: String
    }

    enum Parsed: Equatable {
        case run(Config)
        case help
        case version
    }

    private struct Option: Sendable {
        let flag: String
        let variable: String
        /// Empty for a switch: the flag takes no value, its variable takes true or false.
        let valueName: String
        let help: String
        let apply: @Sendable (inout Config, String) -> String?

        init(flag: String, variable: String, valueName: String, help: String,
             apply: @escaping @Sendable (inout Config, String) -> String?) {
            self.flag = flag
            self.variable = variable
            self.valueName = valueName
            self.help = help
            self.apply = apply
        }

        /// An option naming a file (or a name) that is unset when empty: an image's variable
        /// cannot be removed, only emptied.
        init(flag: String, variable: String, valueName: String, help: String, setting field: WritableKeyPath<Config, String?> & Sendable) {
            self.init(flag: flag, variable: variable, valueName: valueName, help: help) { config, value in
                config[keyPath: field] = value.isEmpty ? nil : value
                return nil
            }
        }
    }

    /// Applies a switch's value ("true" when given as a flag).
    private static func assignSwitch(_ value: String, _ assign: (Bool) -> Void) -> String? {
        switch value.lowercased() {
        case "1", "true", "yes", "on": assign(true)
        case "0", "false", "no", "off": assign(false)
        default: return "must be true or false (1, yes, on / 0, no, off also work)"
        }
        return nil
    }

    private static let options: [Option] = [
        Option(flag: "--host", variable: "REGISTRY_HOST", valueName: "ADDRESS",
               help: "address to listen on (default 0.0.0.0)") { config, value in
            guard !value.isEmpty else { return "must not be empty" }
            config.host = value
            return nil
        },
        Option(flag: "--port", variable: "REGISTRY_PORT", valueName: "PORT",
               help: "TCP port of plain HTTP; 0 picks a free one; off serves TLS only (default 5001)") { config, value in
            if value.lowercased() == "off" {
                config.plainListener = false
                return nil
            }
            guard let port = DecimalText.unsigned(value), port <= 65535 else { return "must be an integer from 0 to 65535, or off" }
            config.port = UInt16(port)
            config.plainListener = true
            return nil
        },
        Option(flag: "--tls-cert", variable: "REGISTRY_TLS_CERT", valueName: "PATH",
               help: "PEM certificate chain (the server's first) for HTTPS on --tls-port; reloaded on SIGHUP", setting: \.tlsCertificate),
        Option(flag: "--tls-key", variable: "REGISTRY_TLS_KEY", valueName: "PATH",
               help: "PEM private key of --tls-cert (unencrypted); reloaded on SIGHUP", setting: \.tlsKey),
        Option(flag: "--tls-client-ca", variable: "REGISTRY_TLS_CLIENT_CA", valueName: "PATH",
               help: "PEM CA bundle: the TLS port then requires a client certificate signed by it (mutual TLS; see cert_subject in the ACL file)", setting: \.tlsClientCA),
        Option(flag: "--tls-port", variable: "REGISTRY_TLS_PORT", valueName: "PORT",
               help: "TCP port of HTTPS, with --tls-cert and --tls-key; 0 picks a free one (default 5443)") { config, value in
            assignPort(value) { config.tlsPort = $0 }
        },
        Option(flag: "--tls-host", variable: "REGISTRY_TLS_HOST", valueName: "ADDRESS",
               help: "address of the HTTPS listener (default: the same as --host)") { config, value in
            guard !value.isEmpty else { return "must not be empty" }
            config.tlsHost = value
            return nil
        },
        Option(flag: "--heartbeat-timeout", variable: "REGISTRY_HEARTBEAT_TIMEOUT", valueName: "SECONDS",
               help: "an instance expires this long after its last heartbeat; fractions allowed (default 30)") { config, value in
            assignSeconds(value, minimum: 0.001, maximum: 86_400 * 7) { config.heartbeatTimeout = $0 }
        },
        Option(flag: "--max-body-bytes", variable: "REGISTRY_MAX_BODY_BYTES", valueName: "BYTES",
               help: "largest request body accepted; larger ones get 413 (default 65536)") { config, value in
            guard let bytes = DecimalText.unsigned(value).map(Int.init), bytes >= 64, bytes <= 64 * 1024 * 1024 else {
                return "must be an integer from 64 to 67108864"
            }
            config.maxBodyBytes = bytes
            return nil
        },
        Option(flag: "--max-output-bytes", variable: "REGISTRY_MAX_OUTPUT_BYTES", valueName: "BYTES",
               help: "answers waiting for clients that read slowly, counted once however many share them; past it the "
                   + "connections stuck longest are closed (default 268435456)") { config, value in
            guard let bytes = DecimalText.unsigned(value).map(Int.init), bytes >= 1024 * 1024, bytes <= 1 << 40 else {
                return "must be an integer from 1048576 to 1099511627776"
            }
            config.maxOutputBytes = bytes
            return nil
        },
        Option(flag: "--max-header-bytes", variable: "REGISTRY_MAX_HEADER_BYTES", valueName: "BYTES",
               help: "largest request line plus headers accepted; larger ones get 414 (request line) or 431 (headers) (default 8192)") { config, value in
            guard let bytes = DecimalText.unsigned(value).map(Int.init), bytes >= 256, bytes <= 1024 * 1024 else {
                return "must be an integer from 256 to 1048576"
            }
            config.maxHeaderBytes = bytes
            return nil
        },
        Option(flag: "--idle-timeout", variable: "REGISTRY_IDLE_TIMEOUT", valueName: "SECONDS",
               help: "close connections idle or stalled this long; fractions allowed (default 60)") { config, value in
            assignSeconds(value, minimum: 0.01, maximum: 86_400) { config.idleTimeout = $0 }
        },
        Option(flag: "--header-timeout", variable: "REGISTRY_HEADER_TIMEOUT", valueName: "SECONDS",
               help: "a request's line and headers must arrive within this long of their first byte, or 408 and close (default 10)") { config, value in
            assignSeconds(value, minimum: 0.01, maximum: 3600) { config.headerTimeout = $0 }
        },
        Option(flag: "--body-timeout", variable: "REGISTRY_BODY_TIMEOUT", valueName: "SECONDS",
               help: "a request's body must arrive within this long of its headers, or 408 and close (default 10)") { config, value in
            assignSeconds(value, minimum: 0.01, maximum: 3600) { config.bodyTimeout = $0 }
        },
        Option(flag: "--max-connections", variable: "REGISTRY_MAX_CONNECTIONS", valueName: "COUNT",
               help: "client connections open at once; one more is answered 503 and closed (default: the descriptor limit less 5 %, at least 64 spare)") { config, value in
            assignCount(value, minimum: 1, maximum: 10_000_000) { config.maxConnections = $0 }
        },
        Option(flag: "--max-watchers", variable: "REGISTRY_MAX_WATCHERS", valueName: "COUNT",
               help: "long-polls and streams held at once; one more is answered 503 (default 50000)") { config, value in
            assignCount(value, minimum: 1, maximum: 10_000_000) { config.maxWatchers = $0 }
        },
        Option(flag: "--max-watchers-per-client", variable: "REGISTRY_MAX_WATCHERS_PER_CLIENT", valueName: "COUNT",
               help: "long-polls and streams one client address may hold; one more is answered 429; 0 for no limit (default 0)") { config, value in
            assignCount(value, minimum: 0, maximum: 10_000_000) { config.maxWatchersPerClient = $0 }
        },
        Option(flag: "--max-instances", variable: "REGISTRY_MAX_INSTANCES", valueName: "COUNT",
               help: "instances the registry holds at most; a registration of one more is answered 429 (default 2000000)") { config, value in
            assignCount(value, minimum: 1, maximum: 1_000_000_000) { config.maxInstances = $0 }
        },
        Option(flag: "--max-services", variable: "REGISTRY_MAX_SERVICES", valueName: "COUNT",
               help: "services the registry holds at most; a registration that would add one more is answered 429 (default 500000)") { config, value in
            assignCount(value, minimum: 1, maximum: 1_000_000_000) { config.maxServices = $0 }
        },
        Option(flag: "--max-request-rate-per-client", variable: "REGISTRY_MAX_REQUEST_RATE_PER_CLIENT", valueName: "RATE",
               help: "requests a second one client address may send (a bucket of one second's worth); more get 429 with Retry-After; 0 for no limit (default 0)") { config, value in
            guard let rate = DecimalText.number(value), rate >= 0, rate <= 10_000_000 else { return "must be a number from 0 to 10000000" }
            config.maxRequestRatePerClient = rate == 0 ? nil : rate
            return nil
        },
        Option(flag: "--max-wait", variable: "REGISTRY_MAX_WAIT", valueName: "SECONDS",
               help: "the longest a blocking query (index=…) is held; longer waits are cut to it (default 600)") { config, value in
            assignSeconds(value, minimum: 0.001, maximum: 86_400) { config.maxWait = $0 }
        },
        Option(flag: "--allowed-origins", variable: "REGISTRY_ALLOWED_ORIGINS", valueName: "ORIGINS",
               help: "comma-separated origins (http://host:port) whose web pages may write to the registry and read it; others' writes get 403 (default none)") { config, value in
            let origins = value.split(separator: ",").map { String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }.filter { !$0.isEmpty }
            for origin in origins where OriginPolicy.normalized(origin) == nil || !OriginPolicy.hasValidPort(origin) {
                return "must list origins like http://dashboard.example:8080 (scheme, host and optional port from 1 to 65535; "
                    + "no path); \(Violation.quoted(origin)) is not one"
            }
            config.allowedOrigins = origins
            return nil
        },
        Option(flag: "--acl-file", variable: "REGISTRY_ACL_FILE", valueName: "PATH",
               help: "tokens and their permissions (JSON, see README); reloaded on SIGHUP. Without it every client may do everything", setting: \.aclFile),
        Option(flag: "--replica-token-file", variable: "REGISTRY_REPLICA_TOKEN_FILE", valueName: "PATH",
               help: "cluster mode with --acl-file: a file holding the token this replica sends to the others (an operator token)", setting: \.replicaTokenFile),
        Option(flag: "--checks", variable: "REGISTRY_CHECKS", valueName: "on|off",
               help: "run the HTTP and TCP checks instances register (requests to addresses clients give; see README); off marks them passing, not run (default on)") { config, value in
            assignSwitch(value) { config.activeChecks = $0 }
        },
        Option(flag: "--check-allow", variable: "REGISTRY_CHECK_ALLOW", valueName: "CIDRS",
               help: "comma-separated networks (10.0.0.0/8,fd00::/8,127.0.0.1) that checks may connect to, after resolving; all for any (default all)") { config, value in
            switch NetworkAllowList.parse(value) {
            case .success(let list):
                config.checkAllow = list
                return nil
            case .failure(let problem):
                return problem.message
            }
        },
        Option(flag: "--max-checks-in-flight", variable: "REGISTRY_MAX_CHECKS_IN_FLIGHT", valueName: "COUNT",
               help: "HTTP and TCP checks running at once; more wait their turn in order (default 512)") { config, value in
            assignCount(value, minimum: 1, maximum: 100_000) { config.maxChecksInFlight = $0 }
        },
        Option(flag: "--consul-port", variable: "REGISTRY_CONSUL_PORT", valueName: "PORT",
               help: "also serve the API (Consul's under /v1/ included) on this port, such as Consul's 8500; 0 picks a free one (default: none)") { config, value in
            assignPort(value) { config.consulPort = $0 }
        },
        Option(flag: "--consul-datacenter", variable: "REGISTRY_CONSUL_DATACENTER", valueName: "NAME",
               help: "the datacenter Consul's API names (default dc1)") { config, value in
            guard Violation.checkZone(value) == nil else { return "must be 1 to 128 letters, digits, '.', '_' or '-'" }
            config.consulDatacenter = value
            return nil
        },
        Option(flag: "--consul-node", variable: "REGISTRY_CONSUL_NODE", valueName: "NAME",
               help: "the node name Consul's API gives this registry (default: the host name)") { config, value in
            guard Violation.checkZone(value) == nil else { return "must be 1 to 128 letters, digits, '.', '_' or '-'" }
            config.consulNode = value
            return nil
        },
        Option(flag: "--dns-port", variable: "REGISTRY_DNS_PORT", valueName: "PORT",
               help: "answer DNS (UDP and TCP) on this port, such as Consul's 8600; 0 picks a free one (default: off)") { config, value in
            assignPort(value) { config.dnsPort = $0 }
        },
        Option(flag: "--dns-host", variable: "REGISTRY_DNS_HOST", valueName: "ADDRESS",
               help: "IP address of the DNS sockets (default: the same as --host)") { config, value in
            config.dnsHost = value
            return nil
        },
        Option(flag: "--dns-domain", variable: "REGISTRY_DNS_DOMAIN", valueName: "DOMAIN",
               help: "the domain DNS answers for, such as registry. or svc.example.com. (consul. is answered too; default registry.)") { config, value in
            let domain = value.hasSuffix(".") ? value : value + "."
            let labels = domain.dropLast().split(separator: ".", omittingEmptySubsequences: false)
            guard !labels.isEmpty, labels.allSatisfy({ DNSZone.isReachable(String($0)) }) else {
                return "must be one or more labels of letters, digits and '-' (at most 63 each), such as registry or svc.example.com"
            }
            config.dnsDomain = domain.lowercased()
            return nil
        },
        Option(flag: "--dns-ttl", variable: "REGISTRY_DNS_TTL", valueName: "SECONDS",
               help: "seconds resolvers may keep a DNS answer (default 0: ask again each time, as Consul)") { config, value in
            guard let seconds = DecimalText.unsigned(value), seconds <= 86_400 else { return "must be an integer from 0 to 86400" }
            config.dnsTTL = UInt32(seconds)
            return nil
        },
        Option(flag: "--log-level", variable: "REGISTRY_LOG_LEVEL", valueName: "LEVEL",
               help: "debug (also turns on --access-log), info, warn or error (default info)") { config, value in
            guard let level = LogLevel.allCases.first(where: { $0.name == value.lowercased() }) else {
                return "must be one of debug, info, warn, error"
            }
            config.logLevel = level
            return nil
        },
        Option(flag: "--log-format", variable: "REGISTRY_LOG_FORMAT", valueName: "FORMAT",
               help: "text (time LEVEL event key=value) or json (one object per line) (default text)") { config, value in
            guard let format = Logger.Format(rawValue: value.lowercased()) else { return "must be one of text, json" }
            config.logFormat = format
            return nil
        },
        Option(flag: "--access-log", variable: "REGISTRY_ACCESS_LOG", valueName: "",
               help: "log one line per answered request: method, target, status, bytes, duration, client, and for a held request how long and why it ended (off by default)") { config, value in
            assignSwitch(value) { config.accessLog = $0 }
        },
        Option(flag: "--shutdown-grace", variable: "REGISTRY_SHUTDOWN_GRACE", valueName: "SECONDS",
               help: "after SIGTERM, keep serving this long with /ready answering 503, then close; a second signal closes at once (default 5)") { config, value in
            assignSeconds(value, minimum: 0, maximum: 3600) { config.shutdownGrace = $0 }
        },
        Option(flag: "--min-ttl", variable: "REGISTRY_MIN_TTL", valueName: "SECONDS",
               help: "smallest ttl_seconds an instance may ask for (default 1)") { config, value in
            assignSeconds(value, minimum: 0.001, maximum: 86_400 * 7) { config.minimumTTL = $0 }
        },
        Option(flag: "--max-ttl", variable: "REGISTRY_MAX_TTL", valueName: "SECONDS",
               help: "largest ttl_seconds an instance may ask for (default 3600)") { config, value in
            assignSeconds(value, minimum: 0.001, maximum: 86_400 * 7) { config.maximumTTL = $0 }
        },
        Option(flag: "--expiry-protection", variable: "REGISTRY_EXPIRY_PROTECTION", valueName: "RATIO",
               help: "never let more than this share (0-1) of a service's instances expire within one heartbeat timeout; off by default (see README)") { config, value in
            if value.lowercased() == "off" {
                config.expiryProtection = nil
                return nil
            }
            guard let ratio = DecimalText.number(value), ratio > 0, ratio < 1 else { return "must be a number above 0 and below 1, or off" }
            config.expiryProtection = ratio
            return nil
        },
        Option(flag: "--data-dir", variable: "REGISTRY_DATA_DIR", valueName: "DIR",
               help: "keep registrations here across restarts; created when missing (default ./\(defaultDataDirectory))") { config, value in
            guard !value.isEmpty else { return "must not be empty" }
            // The later of --data-dir and --in-memory wins (flags come after the environment).
            config.dataDirectory = value
            config.inMemory = false
            config.dataDirectoryGiven = true
            return nil
        },
        Option(flag: "--in-memory", variable: "REGISTRY_IN_MEMORY", valueName: "",
               help: "keep nothing on disk: a restart forgets every registration") { config, value in
            assignSwitch(value) { inMemory in
                config.inMemory = inMemory
                if inMemory { config.dataDirectory = nil }
            }
        },
        Option(flag: "--fsync", variable: "REGISTRY_FSYNC", valueName: "POLICY",
               help: "always (acknowledge after fsync), everysec (fsync each second) or never (default everysec)") { config, value in
            guard let policy = FsyncPolicy(rawValue: value.lowercased()) else { return "must be one of always, everysec, never" }
            config.fsync = policy
            return nil
        },
        Option(flag: "--repair", variable: "REGISTRY_REPAIR", valueName: "",
               help: "start even if the data directory is damaged: keep every valid record, skip the damaged bytes (copies kept as *.damaged)") { config, value in
            assignSwitch(value) { config.repair = $0 }
        },
        Option(flag: "--snapshot-min-log-bytes", variable: "REGISTRY_SNAPSHOT_MIN_LOG_BYTES", valueName: "BYTES",
               help: "snapshot once the log is this long and twice the live state (default 8388608)") { config, value in
            guard let bytes = DecimalText.unsigned(value).map(Int.init), bytes >= 1024, bytes <= 1 << 40 else { return "must be an integer from 1024 to 1099511627776" }
            config.snapshotMinimumLogBytes = bytes
            return nil
        },
        Option(flag: "--etcd", variable: "REGISTRY_ETCD", valueName: "URLS",
               help: "cluster mode: comma-separated client URLs of etcd members (http://10.0.0.1:2379,…); registrations live in etcd, every replica serves reads (see README)") { config, value in
            do {
                config.etcd = try EtcdEndpoint.list(parsing: value)
            } catch {
                return "must list etcd client URLs like http://127.0.0.1:2379 (\((error as? EtcdEndpoint.Invalid)?.message ?? "\(error)"))"
            }
            return nil
        },
        Option(flag: "--etcd-cacert", variable: "REGISTRY_ETCD_CACERT", valueName: "PATH",
               help: "cluster mode with https:// etcd members: the PEM CA bundle their certificates must chain to (default: the system's CAs)", setting: \.etcdCACert),
        Option(flag: "--etcd-cert", variable: "REGISTRY_ETCD_CERT", valueName: "PATH",
               help: "a PEM client certificate for etcd members started with --client-cert-auth (with --etcd-key)", setting: \.etcdCert),
        Option(flag: "--etcd-key", variable: "REGISTRY_ETCD_KEY", valueName: "PATH",
               help: "the PEM key of --etcd-cert", setting: \.etcdKey),
        Option(flag: "--etcd-user", variable: "REGISTRY_ETCD_USER", valueName: "NAME",
               help: "etcd with auth enabled: the user the replicas authenticate as (with --etcd-password-file); it needs readwrite on --etcd-prefix", setting: \.etcdUser),
        Option(flag: "--etcd-password-file", variable: "REGISTRY_ETCD_PASSWORD_FILE", valueName: "PATH",
               help: "a file holding --etcd-user's password (its first line), such as a mounted Secret", setting: \.etcdPasswordFile),
        Option(flag: "--etcd-prefix", variable: "REGISTRY_ETCD_PREFIX", valueName: "PREFIX",
               help: "the etcd key prefix of this registry, so that several share one etcd (default /service-registry/)") { config, value in
            guard value.hasPrefix("/"), value.hasSuffix("/"), value.count >= 2, value.utf8.count <= 200,
                  value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                return "must start and end with / and hold printable ASCII without spaces, e.g. /service-registry/"
            }
            config.etcdPrefix = value
            return nil
        },
        Option(flag: "--replica-name", variable: "REGISTRY_REPLICA_NAME", valueName: "NAME",
               help: "this replica's name in the cluster, unique among its replicas (default: host name and port)") { config, value in
            guard !value.isEmpty, value.utf8.count <= 100,
                  value.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:".unicodeScalars.contains($0) }) else {
                return "must be 1 to 100 letters, digits, '-', '_', '.' or ':'"
            }
            config.replicaName = value
            return nil
        },
        Option(flag: "--advertise-url", variable: "REGISTRY_ADVERTISE_URL", valueName: "URL",
               help: "how the other replicas and clients reach this one, http://HOST:PORT or https://HOST:TLS-PORT (default http://HOST-NAME:PORT; with --port off, https://HOST-NAME:TLS-PORT)") { config, value in
            let scheme = value.hasPrefix("https://") ? "https://" : "http://"
            guard value.hasPrefix(scheme), value.count > scheme.count, !value.dropFirst(scheme.count).contains("/") else {
                return "must be http://HOST:PORT or https://HOST:PORT with no path"
            }
            config.advertiseURL = value
            return nil
        },
        Option(flag: "--replica-cacert", variable: "REGISTRY_REPLICA_CACERT", valueName: "PATH",
               help: "cluster mode with https:// advertise URLs: the PEM CA bundle the other replicas' certificates must chain to (default: the system's CAs); a replica presents its --tls-cert to the leader", setting: \.replicaCACert),
        Option(flag: "--lease-ttl", variable: "REGISTRY_LEASE_TTL", valueName: "SECONDS",
               help: "the leader's etcd lease: when it dies another replica leads within about this long (whole seconds, 2 to 60; default 3)") { config, value in
            guard let seconds = DecimalText.unsigned(value), seconds >= 2, seconds <= 60 else { return "must be a whole number of seconds from 2 to 60" }
            config.leaseTTL = Int(seconds)
            return nil
        },
        Option(flag: "--etcd-timeout", variable: "REGISTRY_ETCD_TIMEOUT", valueName: "SECONDS",
               help: "how long one request to an etcd member may take before the next is tried; a write none commits in time gets 503 (default 3)") { config, value in
            assignSeconds(value, minimum: 0.1, maximum: 60) { config.etcdTimeout = $0 }
        },
    ]

    /// Builds the configuration from `arguments` (without the program name) over
    /// `environment`. Unknown flags, missing values and invalid values are problems.
    static func parse(arguments: [String], environment: [String: String]) throws(Problem) -> Parsed {
        var config = Config()
        for option in options {
            guard let value = environment[option.variable] else { continue }
            // An empty REGISTRY_DATA_DIR is unset: the container image sets it to /data, and
            // an environment variable cannot be removed from an image, only emptied.
            if option.variable == "REGISTRY_DATA_DIR" && value.isEmpty { continue }
            if let problem = option.apply(&config, value) {
                throw Problem(message: "\(option.variable) \(problem), got '\(value)'")
            }
        }
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            if argument == "--help" || argument == "-h" { return .help }
            if argument == "--version" { return .version }
            let flag: String
            let inlineValue: String?
            if let equals = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                flag = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            } else {
                flag = argument
                inlineValue = nil
            }
            guard let option = options.first(where: { $0.flag == flag }) else {
                throw Problem(message: "unknown option '\(argument)'; see --help")
            }
            if option.valueName.isEmpty {
                if let inlineValue {
                    throw Problem(message: "\(flag) takes no value, got '\(inlineValue)'")
                }
                _ = option.apply(&config, "true")
                continue
            }
            guard let value = inlineValue ?? remaining.popFirst() else {
                throw Problem(message: "\(flag) needs a value (\(option.valueName))")
            }
            if let problem = option.apply(&config, value) {
                throw Problem(message: "\(flag) \(problem), got '\(value)'")
            }
        }
        if config.minimumTTL > config.maximumTTL {
            throw Problem(message: "--min-ttl (\(config.minimumTTL.secondsText)) must not be above --max-ttl (\(config.maximumTTL.secondsText))")
        }
        // The default TTL must not be longer than an instance may ask for: otherwise one that
        // sends no ttl_seconds would get a TTL that one sending it is refused. (A shorter one
        // is allowed: sub-second timeouts are how demos and tests make expiry quick.)
        if config.heartbeatTimeout > config.maximumTTL {
            throw Problem(message: "--heartbeat-timeout (\(config.heartbeatTimeout.secondsText)) must not be above --max-ttl "
                + "(\(config.maximumTTL.secondsText)), since it is the TTL of instances that do not ask for one; raise --max-ttl or "
                + "lower --heartbeat-timeout")
        }
        switch (config.tlsCertificate, config.tlsKey) {
        case (.some, nil):
            throw Problem(message: "--tls-cert needs --tls-key (the certificate's private key, PEM)")
        case (nil, .some):
            throw Problem(message: "--tls-key needs --tls-cert (the certificate chain, PEM)")
        default:
            break
        }
        if config.tlsClientCA != nil && !config.tlsEnabled {
            throw Problem(message: "--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for on the TLS port")
        }
        if !config.plainListener && !config.tlsEnabled {
            throw Problem(message: "--port off leaves no listener: give --tls-cert and --tls-key to serve HTTPS, or a --port")
        }
        if config.plainListener && config.tlsEnabled && config.port == config.tlsPort && config.port != 0
            && (config.tlsHost ?? config.host) == config.host {
            throw Problem(message: "--port and --tls-port are both \(config.port); give them different ports")
        }
        if let consulPort = config.consulPort, consulPort != 0, config.plainListener, consulPort == config.port {
            throw Problem(message: "--consul-port and --port are both \(consulPort); the main port serves Consul's API already, so leave --consul-port out")
        }
        if (config.etcdUser == nil) != (config.etcdPasswordFile == nil) {
            throw Problem(message: "--etcd-user and --etcd-password-file go together: the user etcd authenticates, and the file holding its password")
        }
        if (config.etcdCert == nil) != (config.etcdKey == nil) {
            throw Problem(message: "--etcd-cert and --etcd-key go together: a client certificate for etcd, and its key")
        }
        if config.etcd == nil && (config.etcdUser != nil || config.etcdCACert != nil || config.etcdCert != nil) {
            throw Problem(message: "--etcd-user, --etcd-cacert and --etcd-cert are for cluster mode: give --etcd too")
        }
        if config.etcd != nil, config.advertiseURL?.hasPrefix("https://") == true, !config.tlsEnabled {
            throw Problem(message: "--advertise-url https://… needs --tls-cert and --tls-key: the other replicas reach this one on its TLS port")
        }
        if config.etcd != nil, !config.plainListener, config.advertiseURL?.hasPrefix("http://") == true {
            throw Problem(message: "--port off with an http:// --advertise-url: the other replicas could not reach this one; "
                + "advertise its https:// URL")
        }
        if config.etcd != nil && config.aclFile != nil && config.replicaTokenFile == nil {
            throw Problem(message: "--acl-file in cluster mode needs --replica-token-file: the replicas report heartbeats to the "
                + "leader with that token, and the ACL file must grant it \"operator\"")
        }
        if config.etcd != nil && config.dataDirectoryGiven {
            throw Problem(message: "--etcd and --data-dir cannot go together: in cluster mode registrations live in etcd, not in a "
                + "data directory; drop --data-dir (or set REGISTRY_DATA_DIR empty: the container image sets it to /data), "
                + "or drop --etcd to run a single registry")
        }
        return .run(config)
    }

    /// In a cluster the leader hears of a follower's heartbeats about a second late (the
    /// relay's period), two if one report fails: it expires that much after the TTL.
    static let clusterExpiryGrace: Duration = .seconds(2)

    var registryPolicy: RegistryPolicy {
        RegistryPolicy(heartbeatTimeout: heartbeatTimeout, minimumTTL: minimumTTL, maximumTTL: maximumTTL,
                       expiryProtection: expiryProtection, journaling: etcd == nil && persistenceDirectory != nil, mirrored: etcd != nil,
                       expiryGrace: etcd == nil ? .zero : Self.clusterExpiryGrace, maxInstances: maxInstances, maxServices: maxServices)
    }

    static var usage: String {
        var lines = [
            "Usage: service-registry [options]",
            "",
            "A service registry: services register, heartbeat and deregister over HTTP; clients",
            "discover them with GET /discover/{service}.",
            "",
            "Options (each also read from the environment variable shown; flags win):",
        ]
        for option in options {
            let left = option.valueName.isEmpty ? "  \(option.flag)" : "  \(option.flag) \(option.valueName)"
            lines.append(left.padding(toLength: 36) + option.help)
            lines.append(String(repeating: " ", count: 36) + "env \(option.variable)")
        }
        lines.append("  -h, --help".padding(toLength: 36) + "show this help and exit")
        lines.append("  --version".padding(toLength: 36) + "print the version and exit")
        return lines.joined(separator: "\n")
    }

    /// Parses `value` as a decimal count within bounds and hands it to `assign`; returns the
    /// problem, if any, in the options' "must be …" form.
    /// A TCP or UDP port: 0 (pick a free one) to 65535.
    private static func assignPort(_ value: String, _ assign: (UInt16) -> Void) -> String? {
        guard let port = DecimalText.unsigned(value), port <= 65535 else { return "must be an integer from 0 to 65535" }
        assign(UInt16(port))
        return nil
    }

    private static func assignCount(_ value: String, minimum: Int, maximum: Int, _ assign: (Int) -> Void) -> String? {
        guard let count = DecimalText.unsigned(value).map(Int.init), count >= minimum, count <= maximum else {
            return "must be an integer from \(minimum) to \(maximum)"
        }
        assign(count)
        return nil
    }

    /// Parses `value` as seconds within bounds and hands it to `assign`; returns the
    /// problem, if any, in the options' "must be …" form.
    private static func assignSeconds(_ value: String, minimum: Double, maximum: Double, _ assign: (Duration) -> Void) -> String? {
        guard let duration = parseSeconds(value, minimum: minimum, maximum: maximum) else {
            return "must be a number of seconds from \(formatBound(minimum)) to \(formatBound(maximum))"
        }
        assign(duration)
        return nil
    }

    private static func formatBound(_ value: Double) -> String {
        value.rounded() == value ? String(Int(value)) : String(value)
    }

    /// Parses a decimal number of seconds ("30", "0.5") within bounds.
    static func parseSeconds(_ text: String, minimum: Double, maximum: Double) -> Duration? {
        guard let seconds = DecimalText.number(text), seconds >= minimum, seconds <= maximum else { return nil }
        return .nanoseconds(Int64((seconds * 1_000_000_000).rounded()))
    }
}

extension String {
    fileprivate func padding(toLength length: Int) -> String {
        count >= length ? self + " " : self + String(repeating: " ", count: length - count)
    }
}

extension Duration {
    var timeval: (seconds: Int, microseconds: Int) {
        let nanos = max(0, wholeNanoseconds)
        return (Int(nanos / 1_000_000_000), Int(nanos % 1_000_000_000 / 1000))
    }
}
