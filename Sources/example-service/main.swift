#if canImport(Glibc)
import Glibc
#endif
import JSON
import RegistryClient
import TLS
import RegistryWire

let usage = """
Usage: example-service [--host ADDRESS] NAME PORT   serve on PORT and join the registry as NAME
       example-service demo                         show the registry's health, its services and where each resolves
       example-service --version                    print the release

  --host ADDRESS      the address to listen on (default 127.0.0.1, this machine only; in a
                      container, 0.0.0.0 so that other containers reach it); also SERVICE_HOST

Environment:
  REGISTRY_URL        the registry (default http://localhost:5001); several, comma-separated
                      (a cluster's replicas), are tried in turn when one fails
  REGISTRY_TOKEN      the token to send, for a registry with an ACL file (or
  REGISTRY_TOKEN_FILE a file holding it, such as a mounted Kubernetes Secret)
  REGISTRY_CACERT     for an https:// registry: the CA bundle (PEM) its certificate must
                      chain to (default: the system's CAs)
  REGISTRY_CERT       a client certificate and its key (PEM), for a registry that asks
  REGISTRY_KEY        for one (mutual TLS)
  SERVICE_ADDRESS     the address to register (default http://localhost:PORT; in Kubernetes,
                      http://$(POD_IP):PORT)
  HEARTBEAT_INTERVAL  seconds between heartbeats (default 10)
"""

func environment(_ name: String) -> String? {
    guard let raw = getenv(name) else { return nil }
    let value = String(cString: raw)
    return value.isEmpty ? nil : value
}

func printError(_ message: String) {
    let line = message + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

func text(_ value: JSONValue?) -> String {
    switch value {
    case .string(let text)?: return text
    case .number(let number)?: return number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    default: return "-"
    }
}

/// The seed's `example_service.py demo`: health, services, and one round-robin pick for each.
func demo(_ urls: [RegistryURL], token: String?, tls: TLSClientContext?) -> Int32 {
    let connection = RegistryConnection(urls: urls)
    connection.token = token
    connection.tls = tls
    let url = connection.url
    do {
        let health = try connection.call(.get, "/health")
        print("Registry at \(url): \(text(health.json?[member: "status"]))")
        let services = try connection.call(.get, "/services")
        guard case .object(let listing)? = services.json?[member: "services"] else {
            printError("example-service: unexpected /services answer: \(services.text)")
            return 1
        }
        print("Services: \(listing.count)")
        for service in listing {
            let picked = try connection.call(.get, Requests.path("/discover", service: service.name,
                                                                 query: [("pick", "round-robin"), ("limit", "1")]))
            var address = "(no instance up)"
            if case .array(let instances)? = picked.json?[member: "instances"], let first = instances.first {
                address = text(first[member: "address"])
            }
            print("  \(service.name): \(text(service.value[member: "total_instances"])) instance(s), next → \(address)")
        }
        return 0
    } catch {
        printError("example-service: \(error.message)")
        return 3
    }
}

func main() -> Int32 {
    var arguments = Array(CommandLine.arguments.dropFirst())
    var host = environment("SERVICE_HOST") ?? "127.0.0.1"
    if let flag = arguments.firstIndex(where: { $0 == "--host" || $0.hasPrefix("--host=") }) {
        if arguments[flag].hasPrefix("--host=") {
            host = String(arguments[flag].dropFirst("--host=".count))
            arguments.remove(at: flag)
        } else if flag + 1 < arguments.count {
            host = arguments[flag + 1]
            arguments.removeSubrange(flag...(flag + 1))
        } else {
            printError("example-service: --host needs an address (127.0.0.1, 0.0.0.0, …)")
            return 2
        }
        guard !host.isEmpty else {
            printError("example-service: --host needs an address (127.0.0.1, 0.0.0.0, …)")
            return 2
        }
    }
    let url: [RegistryURL]
    do {
        url = try RegistryURL.list(parsing: environment("REGISTRY_URL") ?? "http://localhost:5001")
    } catch {
        printError("example-service: REGISTRY_URL: \(error.message)")
        return 2
    }
    let token: String?
    switch TokenFile.resolve(token: nil, file: nil, environment: environment) {
    case .success(let found): token = found
    case .failure(let problem):
        printError("example-service: \(problem.message)")
        return 2
    }
    let tls: TLSClientContext?
    switch ClientTLS.resolve(caFile: nil, certificate: nil, key: nil, environment: environment) {
    case .success(let found): tls = found
    case .failure(let problem):
        printError("example-service: TLS: \(problem.message)")
        return 2
    }
    if arguments == ["demo"] { return demo(url, token: token, tls: tls) }
    if arguments == ["--version"] || arguments == ["version"] {
        print("example-service \(RegistryVersion.text)")
        return 0
    }
    if arguments.contains("-h") || arguments.contains("--help") {
        print(usage)
        return 0
    }
    guard arguments.count == 2, let port = UInt16(arguments[1]), port > 0 else {
        printError("example-service: expected NAME PORT or demo\n\n" + usage)
        return 2
    }
    var interval: Duration = .seconds(10)
    if let text = environment("HEARTBEAT_INTERVAL") {
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0.01, seconds <= 86_400 else {
            printError("example-service: HEARTBEAT_INTERVAL must be a number of seconds from 0.01 to 86400, got '\(text)'")
            return 2
        }
        interval = .nanoseconds(Int64(seconds * 1e9))
    }
    do {
        let service = try ExampleService(name: arguments[0], host: host, port: port,
                                         address: environment("SERVICE_ADDRESS") ?? "http://localhost:\(port)",
                                         registryURLs: url, token: token, tls: tls, interval: interval)
        service.run()
        return 0
    } catch {
        printError("example-service: \(error.message)")
        return 1
    }
}

signal(SIGPIPE, SIG_IGN)
// A parent may have started us with the stop signals blocked (spawn inherits the mask);
// the loop must still see them.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
sigprocmask(SIG_UNBLOCK, &stopSignals, nil)
exit(main())
