/// The release both executables report with `--version`: the server and registryctl come
/// from one tree and speak the same API. Raised with every release that changes the API, the
/// flags or the on-disk format (the changelog is the git history).
public enum RegistryVersion {
    public static let text = "0.13.0"
}
