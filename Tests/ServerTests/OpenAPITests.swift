import Testing
import Foundation
@testable import Server
import Registry

/// openapi.yaml and the router describe one API: every route the router serves is in the
/// document, and every operation the document describes is served. A route added to one and
/// not the other fails here, by name.
@Suite struct OpenAPITests {
    @Test func everyRouteIsDocumentedAndEveryOperationIsServed() throws {
        let document = OpenAPIDocument(text: try Self.readDocument())
        let documented = Set(document.operations)
        let served = Set(NativeHarness(policy: RegistryPolicy(heartbeatTimeout: .seconds(30))).table.operations.map { OpenAPIOperation(method: $0.method, path: $0.path) })

        let undocumented = served.subtracting(documented).sorted()
        let unserved = documented.subtracting(served).sorted()
        #expect(undocumented.isEmpty, "served by the router but missing from openapi.yaml: \(Self.list(undocumented))")
        #expect(unserved.isEmpty, "described in openapi.yaml but not served by the router: \(Self.list(unserved))")
    }

    @Test func documentIsOpenAPI31AndDescribesTheAPI() throws {
        let document = OpenAPIDocument(text: try Self.readDocument())
        let version = try #require(document.version, "openapi.yaml has no top-level 'openapi:' line")
        #expect(version.hasPrefix("3.1."), "openapi.yaml declares OpenAPI \(version), not 3.1.x")
        // Keeps the agreement test honest: if the parser misread the layout and found nothing,
        // an empty route list would agree with it.
        #expect(document.operations.count >= 10,
                "only \(document.operations.count) operations parsed from openapi.yaml: \(Self.list(document.operations))")
        let repeated = Dictionary(grouping: document.operations, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(repeated.isEmpty, "operations described twice in openapi.yaml: \(Self.list(repeated))")
    }

    @Test func parserReadsOnlyOperationKeysUnderPaths() {
        let document = OpenAPIDocument(text: """
            openapi: "3.1.0"
            info:
              title: t
              get:
            paths:
              /a:
                parameters: []
                get:
                  responses:
                    post:
                      description: nested, not an operation

                head:
              x-extension:
                put:
              /b/{x}:
                post:
            components:
              /c:
                get:
            """)
        #expect(document.version == "3.1.0")
        #expect(document.operations.map(\.description) == ["GET /a", "HEAD /a", "POST /b/{x}"])
    }

    // MARK: Helpers

    /// The text of openapi.yaml at the package root: the nearest folder above this file that
    /// holds Package.swift.
    static func readDocument(from file: String = #filePath) throws -> String {
        var directory = (file as NSString).deletingLastPathComponent
        while !FileManager.default.fileExists(atPath: directory + "/Package.swift") {
            let parent = (directory as NSString).deletingLastPathComponent
            try #require(parent != directory, "no Package.swift in any folder above \(file)")
            directory = parent
        }
        return try String(contentsOfFile: directory + "/openapi.yaml", encoding: .utf8)
    }

    static func list(_ operations: [OpenAPIOperation]) -> String {
        operations.isEmpty ? "none" : operations.map(\.description).joined(separator: ", ")
    }
}

/// One operation: an upper-case HTTP method and a path template such as `/discover/{service}`.
struct OpenAPIOperation: Hashable, Comparable, CustomStringConvertible {
    var method: String
    var path: String

    var description: String { "\(method) \(path)" }

    static func < (lhs: Self, rhs: Self) -> Bool { (lhs.path, lhs.method) < (rhs.path, rhs.method) }
}

/// The two things the tests read from openapi.yaml, found by indentation rather than by a
/// YAML parser: the top-level `openapi:` version, and the operations under `paths:`, where
/// path keys sit at two spaces (`  /register:`) and operation keys at four (`    post:`).
/// Anything deeper (schemas, a nested `post:` in an example) is never at four spaces directly
/// under a path key, so it is not mistaken for an operation.
struct OpenAPIDocument {
    static let operationKeys: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    private(set) var version: String?
    private(set) var operations: [OpenAPIOperation] = []

    init(text: String) {
        var inPaths = false
        var currentPath: String?
        for line in text.split(whereSeparator: \.isNewline) {
            let indent = line.prefix(while: { $0 == " " }).count
            var content = line.dropFirst(indent)
            while content.last == " " { content = content.dropLast() }
            if content.isEmpty || content.hasPrefix("#") { continue }

            if indent == 0 {
                inPaths = content == "paths:"
                currentPath = nil
                if content.hasPrefix("openapi:") {
                    version = String(content.dropFirst("openapi:".count)).trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
                }
            } else if inPaths && indent == 2 {
                currentPath = content.hasPrefix("/") && content.hasSuffix(":") ? String(content.dropLast()) : nil
            } else if inPaths && indent == 4, let path = currentPath, content.hasSuffix(":") {
                let key = String(content.dropLast())
                if Self.operationKeys.contains(key) {
                    operations.append(OpenAPIOperation(method: key.uppercased(), path: path))
                }
            }
        }
    }
}
