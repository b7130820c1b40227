/// One metadata pair of an instance. Metadata lists are kept sorted by key, each key once.
public struct MetadataEntry: Hashable, Sendable {
    public var key: String
    public var value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}
