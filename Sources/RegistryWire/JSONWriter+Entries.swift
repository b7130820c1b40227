import JSON
import Registry

extension JSONWriter {
    /// `"key":"value",…` for each entry, in order, without the braces: metadata and headers,
    /// wherever the API, the store or the client write them.
    public mutating func members(_ entries: [MetadataEntry]) {
        for (position, entry) in entries.enumerated() {
            if position > 0 { raw(",") }
            string(entry.key)
            raw(":")
            string(entry.value)
        }
    }

    /// `["a","b"]`: tags and other lists of strings.
    public mutating func strings(_ list: [String]) {
        raw("[")
        for (position, item) in list.enumerated() {
            if position > 0 { raw(",") }
            string(item)
        }
        raw("]")
    }
}
