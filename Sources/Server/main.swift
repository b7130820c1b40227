#if canImport(Glibc)
import Glibc
#endif
import Registry

/// Parses the configuration, starts the server and runs it until a stop signal.
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
        case .run(let parsed):
            config = parsed
        }
    } catch {
        printError("service-registry: \(error.message)")
        return 2
    }

    // A client that disconnects mid-reply must cost a failed write, not the process.
    signal(SIGPIPE, SIG_IGN)
    // A parent may have started us with stop signals blocked (spawn inherits the mask);
    // the loop must still see them.
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    sigaddset(&stopSignals, SIGTERM)
    sigaddset(&stopSignals, SIGINT)
    sigprocmask(SIG_UNBLOCK, &stopSignals, nil)
    Limits.raiseOpenFileLimit()

    let logger = Logger(level: config.logLevel)
    let api = RegistryAPI(registry: Registry(policy: config.registryPolicy), logger: logger)
    let server: HTTPServer
    do {
        server = try HTTPServer(config: config, api: api, logger: logger)
    } catch {
        printError("service-registry: \(error.message)")
        return 1
    }

    logger.plain("Service Registry starting on port \(server.port)...")
    logger.plain("Heartbeat timeout: \(config.heartbeatTimeout.secondsText)")
    logger.info("listening host=\(config.host) port=\(server.port) max_body_bytes=\(config.maxBodyBytes) "
        + "max_header_bytes=\(config.maxHeaderBytes) idle_timeout=\(config.idleTimeout.secondsText) "
        + "min_ttl=\(config.minimumTTL.secondsText) max_ttl=\(config.maximumTTL.secondsText) "
        + "expiry_protection=\(config.expiryProtection.map { String($0) } ?? "off") log_level=\(config.logLevel.name)")
    logger.flush()

    server.run()
    logger.info("stopped")
    logger.flush()
    return 0
}

exit(runRegistry(arguments: Array(CommandLine.arguments.dropFirst()), environment: Environment.current))
