#if canImport(Glibc)
import Glibc
#endif
import DNS
import HTTPParsing
import Persistence
import Registry
import RegistryWire
import TLS

/// The composition root: parses the configuration, restores the data directory, wires the
/// parts together and runs the loop until a stop signal.
/// Returns the process exit status: 0 after a clean stop, 1 when the server could not
/// start, 2 for a bad command line or environment.
func runRegistry(arguments: [String], environment: [String: String]) -> Int32 {
    // Configuration first: a bad flag must fail before anything is bound.
    let config: Config
    do {
        switch try Config.parse(arguments: arguments, environment: environment) {
        case .help:
            print(Config.usage)
            return 0
        case .version:
            print("service-registry \(RegistryVersion.text)")
            return 0
        case .run(let parsed):
            config = parsed
        }
    } catch {
        printError("service-registry: \(error.message)")
        return 2
    }

    // A client that disconnects mid-reply must cost a failed write, not the process.
    signal(SIGPIPE, SIG_IGN)
    // A file-size limit (ulimit -f) must make a log write fail (and be answered 503), not
    // kill the process.
    signal(SIGXFSZ, SIG_IGN)
    // An alarm nobody set must not end the process.
    signal(SIGALRM, SIG_IGN)
    // A parent may have started us with stop signals blocked (spawn inherits the mask);
    // the loop must still see them (and the ones it logs and ignores).
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    for handled in [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&stopSignals, handled) }
    sigprocmask(SIG_UNBLOCK, &stopSignals, nil)
    Limits.raiseOpenFileLimit()

    let logger = Logger(level: config.logLevel, format: config.logFormat)
    var registry = Registry(policy: config.registryPolicy)
    var restored: LocalLogStore.Setup?
    if let path = config.persistenceDirectory {
        do {
            restored = try restore(into: &registry, from: path, config: config, logger: logger)
        } catch {
            logger.flush()
            printError("service-registry: \(error.message)")
            return 1
        }
    }

    // The composition: one loop; the service over the store; the native API's routes in the
    // table; the watchers; the listener; the shutdown sequence.
    let loop: EventLoop
    do {
        loop = try EventLoop()
    } catch {
        printError("service-registry: \(error.message)")
        return 1
    }
    logger.onFirstLine = { [unowned loop] in loop.scheduleEndOfTurn() }
    let store: any ChangeStore = restored.map { LocalLogStore(setup: $0, loop: loop, logger: logger) } ?? MemoryStore()
    let service = RegistryService(registry: registry, store: store, logger: logger, loop: loop)
    let api = NativeAPI(service: service, logger: logger, maximumWait: config.maxWait)
    let consul = ConsulAPI(service: service, native: api, settings: ConsulAPI.Settings(
        datacenter: config.consulDatacenter, nodeName: config.consulNode ?? ConsulAPI.hostName(),
        nodeAddress: config.host == "0.0.0.0" || config.host == "::" ? "127.0.0.1" : config.host,
        advertised: "", maximumWait: config.maxWait))
    let serviceNames = ServiceNameIndex(service: service)
    let eureka = EurekaAPI(service: service, native: api, names: serviceNames)
    let table = RouteTable.registry(api: api, service: service, consul: consul, eureka: eureka)
    let metrics = Metrics(routeLabels: table.labels)
    let accessLog = config.accessLogEnabled ? AccessLog(logger: logger) : nil
    AccessLog.current = accessLog
    let hub = WatchHub(loop: loop, api: api, metrics: metrics, logger: logger, accessLog: accessLog, idleTimeout: config.idleTimeout,
                       limits: WatchHub.Limits(maxWatchers: config.maxWatchers, maxWatchersPerClient: config.maxWatchersPerClient))
    let access: AccessControl
    do {
        access = try AccessControl(path: config.aclFile, logger: logger)
    } catch {
        printError("service-registry: \(error.message); fix the file, or start without --acl-file")
        return 1
    }
    api.aclInForce = { [unowned access] in !access.isOpen }
    var replicaToken: String?
    if let path = config.replicaTokenFile {
        switch AccessControl.readToken(path) {
        case .success(let token): replicaToken = token
        case .failure(let problem):
            printError("service-registry: \(problem.message)")
            return 1
        }
        if let policy = access.policy, !policy.caller(token: replicaToken).grant.isOperator {
            printError("service-registry: the token in \(path) is not an operator token in \(config.aclFile ?? "the ACL file"); "
                + "the leader would refuse this replica's heartbeat reports. Give it an entry with \"operator\": true")
            return 1
        }
    }
    let quotas = Quotas(clientRate: config.maxRequestRatePerClient)
    api.quotas = quotas
    service.read { quotas.rebuild(access.policy, registry: $0) }
    service.onChange { [unowned service] changed in
        guard quotas.tracksHoldings else { return }
        service.read { registry in for name in changed { quotas.note(name, registry: registry) } }
    }
    let certificates: Certificates?
    do {
        certificates = try config.tlsEnabled ? Certificates(config: config, logger: logger) : nil
    } catch {
        printError("service-registry: \(error.message)")
        return 1
    }
    var frontEnds: [HTTPFrontEnd] = []
    var consulFrontEnd: HTTPFrontEnd?
    do {
        if config.plainListener {
            frontEnds.append(try HTTPFrontEnd(config: config, listener: .init(host: config.host, port: config.port, portFlag: "--port"),
                                              loop: loop, table: table, service: service, hub: hub, metrics: metrics, logger: logger,
                                              accessLog: accessLog, access: access, quotas: quotas))
        }
        if let certificates {
            frontEnds.append(try HTTPFrontEnd(config: config, listener: .init(host: config.tlsHost ?? config.host, port: config.tlsPort,
                                                                             tls: certificates.current, portFlag: "--tls-port"),
                                              loop: loop, table: table, service: service, hub: hub, metrics: metrics, logger: logger,
                                              accessLog: accessLog, access: access, quotas: quotas))
        }
        if let consulPort = config.consulPort {
            consulFrontEnd = try HTTPFrontEnd(config: config, listener: .init(host: config.host, port: consulPort, portFlag: "--consul-port"),
                                              loop: loop, table: table, service: service, hub: hub, metrics: metrics, logger: logger,
                                              accessLog: accessLog, access: access, quotas: quotas)
        }
    } catch {
        printError("service-registry: \(error.message)")
        return 1
    }
    var dns: DNSServer?
    if let dnsPort = config.dnsPort {
        do {
            var domains = [DNSName(config.dnsDomain)!]
            if config.dnsDomain != "consul." { domains.append(DNSName("consul.")!) }
            dns = try DNSServer(host: config.dnsHost ?? config.host, port: dnsPort,
                                zone: DNSZone(domains: domains, ttl: config.dnsTTL, datacenter: config.consulDatacenter),
                                loop: loop, service: service, names: serviceNames, logger: logger)
            // DNS has no tokens: with an ACL file it lists what anonymous callers may read.
            dns?.mayList = { [unowned access] name in access.anonymousGrant.mayRead(name) }
            dns?.rulesGeneration = { [unowned access] in access.reloads }
        } catch {
            printError("service-registry: \(error.message)")
            return 1
        }
    }
    let plain = frontEnds.first { !$0.isTLS }
    let secure = frontEnds.first { $0.isTLS }
    consul.settings.advertised = InstanceEndpoint(scheme: nil, host: consul.settings.nodeAddress,
                                                  port: Int((plain ?? secure ?? consulFrontEnd)?.port ?? 0)).target
    if let consulFrontEnd { frontEnds.append(consulFrontEnd) }
    certificates?.onReload = { context in secure?.useCertificates(context) }
    // Cluster mode: the registry mirrors etcd, and writes go there first.
    var cluster: Cluster?
    if let endpoints = config.etcd, let reachable = plain ?? secure {
        let started = Cluster(config: config, endpoints: endpoints, port: reachable.port, secure: plain == nil, loop: loop, logger: logger)
        do {
            try started.configureEtcdSecurity(config)
        } catch {
            printError("service-registry: \(error.message)")
            return 1
        }
        started.relay.token = replicaToken
        if config.tlsEnabled || config.replicaCACert != nil {
            // To a leader advertising https://: its CA, and this replica's certificate for a
            // leader that asks for one (--tls-client-ca).
            do {
                started.relay.tls = try TLSClientContext(caFile: config.replicaCACert, certificate: config.tlsCertificate, key: config.tlsKey)
            } catch {
                printError("service-registry: the TLS of the replicas' reports to the leader: \(error.message)")
                return 1
            }
        }
        api.cluster = started
        cluster = started
    }
    let checker = HealthChecker(service: service, loop: loop, logger: logger, activeChecks: config.activeChecks, allow: config.checkAllow,
                                maxInFlight: config.maxChecksInFlight)
    api.checker = checker
    api.metricsExposition = { [unowned service, unowned hub] in
        metrics.exposition(Metrics.Figures(service: service, longPolls: hub.pollCount, streams: hub.streamCount, store: store.stats,
                                           transport: frontEnds.map(\.transportStats).reduce(Transport.Stats(), +), cluster: cluster,
                                           access: access, certificates: certificates, quotas: quotas, config: config,
                                           checker: checker, dns: dns))
    }
    let lifecycle = Lifecycle(loop: loop, service: service, frontEnds: frontEnds, heldRequests: { [unowned hub] in hub.pollCount + hub.streamCount },
                              shutdownGrace: config.shutdownGrace, logger: logger, onReload: { [unowned hub, unowned service] in
        certificates?.reload()
        // Streams and blocking queries admitted under the old rules end (a revoked token's
        // stream must not go on); their clients come back and are judged by the new ones.
        if access.reload() {
            service.read { quotas.rebuild(access.policy, registry: $0) }
            hub.finishAll(now: Clock.monotonicNow(), wallClock: Clock.wallNow(), end: .aclReloaded)
        }
    })
    // Last of every turn: the turn's log lines, with one write.
    loop.onEndOfTurn { logger.flush() }

    if let plain {
        logger.plain("Service Registry starting on port \(plain.port)...")
        if let secure { logger.plain("HTTPS on port \(secure.port)\(certificates?.clientNote ?? "")") }
    } else if let secure {
        logger.plain("Service Registry starting on port \(secure.port) (HTTPS only)...")
        logger.plain("HTTPS on port \(secure.port)\(certificates?.clientNote ?? "")")
    }
    if let dns { logger.plain("DNS on port \(dns.port) (UDP and TCP) for \(config.dnsDomain) and consul.") }
    if let consulFrontEnd { logger.plain("Consul clients' port \(consulFrontEnd.port) (--consul-port): the same API, Consul's under /v1/") }
    logger.plain("Heartbeat timeout: \(config.heartbeatTimeout.secondsText)")
    if let cluster {
        logger.plain("Cluster: replica \(cluster.leadership.me.name) (\(cluster.leadership.me.url)) on etcd "
            + "\(config.etcd!.map(\.description).joined(separator: ",")), prefix \(config.etcdPrefix)")
    } else if let restored {
        logger.plain("Persistence: \(restored.directory.path) (fsync \(config.fsync.rawValue))")
    } else {
        logger.plain("Persistence: off (--in-memory); a restart forgets every registration")
    }
    if config.shutdownGrace > .zero {
        logger.plain("Stop: Ctrl-C (SIGINT) closes at once; SIGTERM drains for \(config.shutdownGrace.secondsText) first (/ready answers 503)")
    } else {
        logger.plain("Stop: Ctrl-C (SIGINT) or SIGTERM closes at once (--shutdown-grace 0)")
    }
    logger.info("listening", [
        "host": config.host, "port": plain.map { $0.port as any LogValue } ?? "off", "tls_port": secure.map { $0.port as any LogValue } ?? "off",
        "consul_port": consulFrontEnd.map { $0.port as any LogValue } ?? "off",
        "dns_port": dns.map { $0.port as any LogValue } ?? "off",
        "max_body_bytes": config.maxBodyBytes,
        "max_header_bytes": config.maxHeaderBytes, "idle_timeout": config.idleTimeout.secondsText,
        "header_timeout": config.headerTimeout.secondsText, "body_timeout": config.bodyTimeout.secondsText,
        "max_connections": config.maxConnections ?? Limits.defaultMaxConnections,
        "min_ttl": config.minimumTTL.secondsText, "max_ttl": config.maximumTTL.secondsText,
        "expiry_protection": config.expiryProtection.map { String($0) } ?? "off", "log_level": config.logLevel.name,
        "access_log": config.accessLogEnabled ? "on" : "off",
        "shutdown_grace": config.shutdownGrace.secondsText, "mode": config.etcd == nil ? "single" : "cluster",
        "checks": config.activeChecks ? "on" : "off",
        "check_allow": config.checkAllow.allowsEverything ? "all" : config.checkAllow.blocks.map(\.text).joined(separator: ","),
        "max_checks_in_flight": config.maxChecksInFlight,
    ])
    if config.activeChecks && config.checkAllow.allowsEverything {
        logger.info("checks_unrestricted", ["note": "HTTP and TCP checks may connect to any address a client registers; "
                                                + "restrict them with --check-allow CIDR,... (see README, Health checks)"])
    }
    if let certificates { certificates.logLoaded() }
    if let policy = access.policy {
        logger.info("acl_loaded", ["path": config.aclFile ?? "", "tokens": policy.entries.count, "anonymous": policy.anonymous.summary,
                                   "note": "SIGHUP reloads the file"])
    } else {
        logger.warn("acl_off", ["note": "no --acl-file: every client that reaches the port may register, deregister and change any "
                                    + "instance; give an ACL file (see README, Tokens) anywhere but a trusted network"])
    }
    logger.flush()

    // Restored instances get their full TTL from now, when the registry serves again.
    if let restored { service.finishRestore(changeIndex: restored.changeIndexOnDisk, now: Clock.monotonicNow()) }
    // Before serving: from here on the /services listing is kept up to date change by change.
    api.prepareListing()
    cluster?.start(service: service)
    // A single registry leads from the start; a replica starts checking when it leads.
    checker.start()
    loop.run()
    // The loop is over: make the store durable and close it, then free evhttp and the loop.
    let synced = service.finish()
    withExtendedLifetime(lifecycle) {}
    for frontEnd in frontEnds { frontEnd.close() }
    checker.close()
    dns?.close()
    loop.close()
    logger.info("stopped")
    logger.flush()
    // A failed last fsync means acknowledged changes may not be on disk: say so with the status.
    return synced ? 0 : 1
}

exit(runRegistry(arguments: Array(CommandLine.arguments.dropFirst()), environment: Environment.current))
