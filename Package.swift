// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "service-registry",
    products: [
        .executable(name: "service-registry", targets: ["Server"]),
    ],
    targets: [
        // libevent's evhttp, from Debian's libevent-dev: a module map and one shim header.
        .systemLibrary(
            name: "CLibevent",
            pkgConfig: "libevent",
            providers: [.apt(["libevent-dev"])]
        ),
        // The registry as a pure, single-threaded state machine: no I/O, no clock reads.
        .target(name: "Registry"),
        // A strict RFC 8259 parser and an allocation-light writer, shared by the server and
        // the client.
        .target(name: "JSON"),
        // The on-disk form of the registry: journal records, frames with CRC-32C, recovery.
        .target(name: "Persistence", dependencies: ["Registry"]),
        // evhttp glue, router, JSON, configuration, signals, timers and `main`.
        .executableTarget(
            name: "Server",
            dependencies: ["CLibevent", "Registry", "Persistence", "JSON"],
            linkerSettings: [
                // Export our `evhttp_send_error` so that libevent's own error replies
                // (413, 400 on garbage) come out as JSON; see LibeventErrorReply.swift.
                .unsafeFlags(["-Xlinker", "--export-dynamic-symbol=evhttp_send_error"]),
            ]
        ),
        .testTarget(name: "RegistryTests", dependencies: ["Registry"]),
        .testTarget(name: "PersistenceTests", dependencies: ["Persistence", "Registry"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Registry", "JSON"]),
    ],
    swiftLanguageModes: [.v6]
)
