// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "service-registry",
    products: [
        .executable(name: "service-registry", targets: ["Server"]),
        .executable(name: "registryctl", targets: ["registryctl"]),
        .executable(name: "example-service", targets: ["example-service"]),
    ],
    targets: [
        // libevent's evhttp, from Debian's libevent-dev: a module map and one shim header.
        .systemLibrary(
            name: "CLibevent",
            pkgConfig: "libevent",
            providers: [.apt(["libevent-dev"])]
        ),
        // OpenSSL 3 from Debian's libssl-dev, for the TLS target only.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // TLS on libevent: the server's and the client's OpenSSL contexts from PEM files,
        // bufferevent_openssl for evhttp, certificate names and handshake figures.
        .target(name: "TLS", dependencies: ["CLibevent", "COpenSSL"]),
        // The registry as a pure, single-threaded state machine: no I/O, no clock reads.
        .target(name: "Registry"),
        // A strict RFC 8259 parser and an allocation-light writer, shared by the server and
        // the client.
        .target(name: "JSON"),
        // The on-disk form of the registry: journal records, frames with CRC-32C, recovery.
        .target(name: "Persistence", dependencies: ["Registry"]),
        // The API's request bodies, defined once: the client encodes them, the server decodes
        // them, and the core's own rules judge the values on both sides.
        .target(name: "RegistryWire", dependencies: ["JSON", "Registry"]),
        // Who may do what: the ACL file's tokens and grants, SHA-256 digests, service-name
        // patterns. Pure, like the core: the server reads the file and asks it.
        .target(name: "Access", dependencies: ["JSON"]),
        // What a request's bytes must be, before the server acts on them: HTTP/1.1 framing
        // (RFC 9112), the read query, percent-decoding, strict decimals. Pure, and fuzzed.
        .target(name: "HTTPParsing", dependencies: ["Registry", "RegistryWire"]),
        // DNS messages (a query in, a response out: names compressed, whole records within a
        // size, EDNS0) and the registry as a DNS zone. Pure, and fuzzed; the server does the sockets.
        .target(name: "DNS", dependencies: ["Registry", "HTTPParsing"]),
        // etcd's v3 API through its JSON gateway on libevent's HTTP client: the cluster's store.
        .target(name: "Etcd", dependencies: ["CLibevent", "JSON", "TLS"]),
        // A client for the registry's HTTP API on libevent's HTTP client, for tools and services.
        .target(name: "RegistryClient", dependencies: ["CLibevent", "JSON", "RegistryWire", "TLS"]),
        // evhttp glue, router, JSON, configuration, signals, timers and `main`.
        .executableTarget(
            name: "Server",
            dependencies: ["CLibevent", "Registry", "RegistryWire", "Persistence", "JSON", "Etcd", "RegistryClient", "Access", "TLS", "HTTPParsing", "DNS"],
            linkerSettings: [
                // Export our `evhttp_send_error` so that libevent's own error replies
                // (413, 400 on garbage) come out as JSON; see LibeventErrorReply.swift.
                .unsafeFlags(["-Xlinker", "--export-dynamic-symbol=evhttp_send_error"]),
            ]
        ),
        // registryctl: the registry from the command line and from scripts; `run` joins a
        // command to the registry for as long as it runs.
        .executableTarget(name: "registryctl", dependencies: ["RegistryClient", "RegistryWire", "Registry", "JSON", "TLS"]),
        // The seed's example service, for real: serves HTTP, registers, heartbeats, deregisters.
        .executableTarget(name: "example-service", dependencies: ["CLibevent", "RegistryClient", "RegistryWire", "Registry", "JSON", "TLS"]),
        // What the test targets share: a seeded generator for reproducible random inputs.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "TestSupport"]),
        .testTarget(name: "PersistenceTests", dependencies: ["Persistence", "Registry", "TestSupport"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Registry", "JSON", "TestSupport", "Access", "HTTPParsing", "DNS"]),
        .testTarget(name: "EtcdTests", dependencies: ["Etcd", "CLibevent", "JSON", "TestSupport"]),
        .testTarget(name: "AccessTests", dependencies: ["Access", "JSON"]),
        .testTarget(name: "RegistryWireTests", dependencies: ["RegistryWire", "Registry", "JSON", "TestSupport"]),
        .testTarget(name: "DNSTests", dependencies: ["DNS", "Registry", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// The fuzzers (`make fuzz`, `Fuzz/run.sh`): libFuzzer entry points over the parsers and the
// recovery of a data directory. Declared only when REGISTRY_FUZZ is set, and built with
// `-sanitize=fuzzer,address` into their own build folder: libFuzzer supplies their `main`,
// which the rest of the package must not be linked with.
if Context.environment["REGISTRY_FUZZ"] != nil {
    let fuzzers: [(name: String, dependencies: [Target.Dependency])] = [
        ("json", ["JSON"]),
        ("bodies", ["RegistryWire", "Registry"]),
        ("consul", ["RegistryWire", "Registry", "HTTPParsing"]),
        ("dns", ["DNS", "Registry"]),
        ("eureka", ["RegistryWire", "Registry"]),
        ("acl", ["Access"]),
        ("query", ["HTTPParsing"]),
        ("percent", ["HTTPParsing"]),
        ("framing", ["HTTPParsing"]),
        ("journal", ["Persistence", "Registry"]),
        ("recovery", ["Persistence", "Registry"]),
    ]
    // libFuzzer's driver and entry point, which every fuzzer's main.swift shares.
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/Support"))
    for fuzzer in fuzzers {
        package.targets.append(.executableTarget(name: "fuzz-\(fuzzer.name)", dependencies: fuzzer.dependencies + ["FuzzSupport"],
                                                 path: "Fuzz/\(fuzzer.name)"))
        package.products.append(.executable(name: "fuzz-\(fuzzer.name)", targets: ["fuzz-\(fuzzer.name)"]))
    }
}
