#if canImport(Glibc)
import Glibc
#endif
import RegistryClient
import RegistryWire

let usage = """
Usage: registryctl [--registry URL] [--token TOKEN | --token-file PATH] [--json]
                   [--cacert PEM] [--cert PEM --key PEM] [--timeout SECONDS] COMMAND …

Talks to a service registry (default http://localhost:5001, or REGISTRY_URL). Several URLs,
comma-separated (a cluster's replicas), are tried in turn when one cannot be reached or
answers 503. A registry with an ACL file wants a token: --token, --token-file, or
REGISTRY_TOKEN / REGISTRY_TOKEN_FILE (a file keeps it out of ps and shell history).
An https:// URL (the registry's --tls-port, default 5443) is checked against the system's
CAs, or the CA bundle --cacert (REGISTRY_CACERT); a registry that asks for a client
certificate gets --cert and --key (REGISTRY_CERT, REGISTRY_KEY).

Commands:
  register SERVICE ADDRESS [--id ID] [--tag T]… [--meta K=V]… [--weight N] [--zone Z]
                           [--status S] [--ttl SECONDS]
                           [--check-http URL | --check-tcp HOST:PORT] [--check-interval D]
                           [--check-timeout D] [--check-deregister-after D]
  heartbeat SERVICE ADDRESS [--status S]
  deregister SERVICE ADDRESS
  status SERVICE ADDRESS UP|STARTING|DOWN|OUT_OF_SERVICE
  discover SERVICE [--tag T]… [--zone Z] [--meta K=V]… [--status S|any] [--health H]
                   [--pick round-robin|random|weighted] [--limit N]
  services
  health
  watch [SERVICE] [--tag T]… [--zone Z] [--status S|any]
                           follow changes as they happen (Ctrl-C to stop); a service's
                           instances of every status unless --status says which
  help [COMMAND]           this text, or one command's (also COMMAND --help)
  version                  registryctl's version (also --version)
  run --service S --address A [--interval 10s] [register's options] -- COMMAND [ARGS…]
                           run COMMAND, register it, heartbeat while it runs, deregister when
                           it ends or on SIGTERM/SIGINT (passed on to it); exits with its status

ADDRESS names the instance (it is its id unless --id was given at registration).
Tables for people by default; --json prints the registry's JSON answer as it is.

Exit status: 0 done; 1 the registry refused the request (4xx, 5xx); 2 bad command line;
3 the registry could not be reached, or what answered is not a registry; 4 no such service
or instance (404).
run exits with the command's status (128+N if signal N killed it), 126 if it cannot be
executed, 127 if it is not found.
"""

func main() -> Int32 {
    var words = Array(CommandLine.arguments.dropFirst())
    let separator = words.firstIndex(of: "--") ?? words.count
    var registryText = Environment.value("REGISTRY_URL") ?? "http://localhost:5001"
    var json = false
    var timeout: Duration = .seconds(5)
    var wantsHelp = false
    var wantsVersion = false
    var token: String?
    var tokenFile: String?
    var caFile: String?
    var certificate: String?
    var key: String?
    // Global options may come anywhere before `--`.
    var index = 0
    var end = separator
    while index < end {
        let word = words[index]
        func take() -> String? {
            if let equals = word.firstIndex(of: "=") { return String(word[word.index(after: equals)...]) }
            guard index + 1 < end else { return nil }
            let value = words[index + 1]
            words.remove(at: index + 1)
            end -= 1
            return value
        }
        if word == "--json" {
            json = true
        } else if word == "-h" || word == "--help" {
            wantsHelp = true
        } else if word == "--version" {
            wantsVersion = true
        } else if word == "--registry" || word.hasPrefix("--registry=") {
            guard let value = take() else { printError("registryctl: --registry needs a URL"); return ExitCode.usage }
            registryText = value
        } else if word == "--token" || word.hasPrefix("--token=") {
            guard let value = take() else { printError("registryctl: --token needs a token"); return ExitCode.usage }
            token = value
        } else if word == "--token-file" || word.hasPrefix("--token-file=") {
            guard let value = take() else { printError("registryctl: --token-file needs a path"); return ExitCode.usage }
            tokenFile = value
        } else if word == "--cacert" || word.hasPrefix("--cacert=") {
            guard let value = take() else { printError("registryctl: --cacert needs a path (a PEM CA bundle)"); return ExitCode.usage }
            caFile = value
        } else if word == "--cert" || word.hasPrefix("--cert=") {
            guard let value = take() else { printError("registryctl: --cert needs a path (a PEM certificate)"); return ExitCode.usage }
            certificate = value
        } else if word == "--key" || word.hasPrefix("--key=") {
            guard let value = take() else { printError("registryctl: --key needs a path (a PEM private key)"); return ExitCode.usage }
            key = value
        } else if word == "--timeout" || word.hasPrefix("--timeout=") {
            guard let value = take(), let parsed = parseInterval(value) else {
                printError("registryctl: --timeout takes seconds (5, 2.5, 500ms)")
                return ExitCode.usage
            }
            timeout = parsed
        } else {
            index += 1
            continue
        }
        words.remove(at: index)
        end -= 1
    }
    let first = words.first.flatMap { $0 == "--" ? nil : $0 }
    if wantsHelp || first == "help" {
        let topic = wantsHelp ? first : words.dropFirst().first
        guard let topic, topic != "help" else {
            print(usage)
            return ExitCode.ok
        }
        guard let text = commandUsage(topic) else {
            printError("registryctl help: no command '\(topic)'; the commands are \(commandNames.joined(separator: ", "))")
            return ExitCode.usage
        }
        print(text)
        return ExitCode.ok
    }
    guard let command = first ?? (wantsVersion ? "version" : nil) else {
        printError(usage)
        return ExitCode.usage
    }
    if wantsVersion || command == "version" {
        print("registryctl \(RegistryVersion.text)")
        return ExitCode.ok
    }
    let urls: [RegistryURL]
    do {
        urls = try RegistryURL.list(parsing: registryText)
    } catch {
        printError("registryctl: --registry/REGISTRY_URL: \(error.message)")
        return ExitCode.usage
    }
    let connection = RegistryConnection(urls: urls, timeout: timeout)
    switch TokenFile.resolve(token: token, file: tokenFile, environment: Environment.value) {
    case .success(let found): connection.token = found
    case .failure(let problem):
        printError("registryctl: \(problem.message)")
        return ExitCode.usage
    }
    switch ClientTLS.resolve(caFile: caFile, certificate: certificate, key: key, environment: Environment.value) {
    case .success(let found): connection.tls = found
    case .failure(let problem):
        printError("registryctl: TLS: \(problem.message)")
        return ExitCode.usage
    }
    let context = Context(connection: connection, json: json)
    let rest = words.dropFirst()
    do throws(Arguments.Problem) {
        switch command {
        case "register": return try register(context, rest)
        case "heartbeat": return try instanceCommand(context, rest, route: "/heartbeat")
        case "deregister": return try instanceCommand(context, rest, route: "/deregister")
        case "status": return try instanceCommand(context, rest, route: "/status")
        case "discover": return try discover(context, rest)
        case "services": return try services(context, rest)
        case "health": return try health(context, rest)
        case "watch": return try watch(context, rest)
        case "run": return try runCommand(context, rest)
        default:
            printError("registryctl: unknown command '\(command)'; see registryctl --help")
            return ExitCode.usage
        }
    } catch {
        printError("registryctl \(command): \(error.message)")
        return ExitCode.usage
    }
}

/// The commands, in the order `usage` lists them.
let commandNames = ["register", "heartbeat", "deregister", "status", "discover", "services", "health", "watch", "run",
                    "help", "version"]

/// One command's lines of `usage` (its synopsis and their continuation lines), with the
/// global options and exit statuses that apply to every command.
func commandUsage(_ name: String) -> String? {
    guard commandNames.contains(name) else { return nil }
    var lines: [Substring] = []
    var inside = false
    for line in usage.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("  "), !line.hasPrefix("   ") {
            inside = line.dropFirst(2).hasPrefix(name + " ") || line.dropFirst(2) == name
        } else if !line.hasPrefix("   ") {
            inside = false
        }
        if inside { lines.append(line) }
    }
    return (["Usage: registryctl [--registry URL] [--json] [--timeout SECONDS] \(name) …", ""] + lines.map(String.init)
        + ["", "See registryctl --help for the global options and the exit statuses."]).joined(separator: "\n")
}

enum Environment {
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }
}

signal(SIGPIPE, SIG_IGN)
exit(main())
