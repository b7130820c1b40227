import TLS

/// How a tool trusts an `https://` registry and which certificate it presents:
/// `--cacert`, `--cert` and `--key` (curl's names), else `REGISTRY_CACERT`, `REGISTRY_CERT`
/// and `REGISTRY_KEY`. Nothing given: the system's CAs and no client certificate.
public enum ClientTLS {
    public struct Problem: Error, Sendable {
        public let message: String
    }

    public static func resolve(caFile: String?, certificate: String?, key: String?,
                               environment: (String) -> String?) -> Result<TLSClientContext?, Problem> {
        func pick(_ flag: String?, _ variable: String) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let value = environment(variable), !value.isEmpty { return value }
            return nil
        }
        let caFile = pick(caFile, "REGISTRY_CACERT")
        let certificate = pick(certificate, "REGISTRY_CERT")
        let key = pick(key, "REGISTRY_KEY")
        guard caFile != nil || certificate != nil || key != nil else { return .success(nil) }
        do {
            return .success(try TLSClientContext(caFile: caFile, certificate: certificate, key: key))
        } catch {
            return .failure(Problem(message: error.message))
        }
    }
}
