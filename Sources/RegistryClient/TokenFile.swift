#if canImport(Glibc)
import Glibc
#endif

/// A token for a registry with an ACL file, from a file (`--token-file`,
/// `REGISTRY_TOKEN_FILE`; a Kubernetes Secret mounted as a file): its first line, blanks
/// around it dropped. A file keeps the token out of `ps` and shell history.
public enum TokenFile {
    public struct Problem: Error, Sendable {
        public let message: String
    }

    public static func read(_ path: String) -> Result<String, Problem> {
        guard let file = fopen(path, "rb") else {
            return .failure(Problem(message: "cannot read the token file \(path): \(String(cString: strerror(errno)))"))
        }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = fread(&buffer, 1, buffer.count, file)
        let line = buffer[..<count].split(separator: UInt8(ascii: "\n")).first ?? []
        let blanks: Set<UInt8> = [0x20, 0x09, 0x0D]
        let trimmed = line.drop { blanks.contains($0) }.reversed().drop { blanks.contains($0) }.reversed()
        guard !trimmed.isEmpty else { return .failure(Problem(message: "the token file \(path) holds no token")) }
        return .success(String(decoding: trimmed, as: UTF8.self))
    }

    /// The token a tool should send: `--token`, else `--token-file`, else `REGISTRY_TOKEN`,
    /// else `REGISTRY_TOKEN_FILE`; nil when none is given.
    public static func resolve(token: String?, file: String?, environment: (String) -> String?) -> Result<String?, Problem> {
        if let token, !token.isEmpty { return .success(token) }
        if let file, !file.isEmpty { return read(file).map { $0 } }
        if let token = environment("REGISTRY_TOKEN"), !token.isEmpty { return .success(token) }
        if let file = environment("REGISTRY_TOKEN_FILE"), !file.isEmpty { return read(file).map { $0 } }
        return .success(nil)
    }
}
