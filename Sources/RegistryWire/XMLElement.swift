/// A small, strict XML reader for request bodies (Eureka's XML registrations): elements,
/// attributes, text, the five predefined entities and character references, comments and an
/// XML declaration. No DTD (a `<!DOCTYPE` is refused, so no entity expansion can be asked
/// for), no namespaces beyond keeping prefixed names as they are. Depth and size are bounded.
public struct XMLElement: Equatable, Sendable {
    public var name: String
    public var attributes: [(name: String, value: String)]
    public var children: [XMLElement]
    /// The element's text, its parts joined (whitespace kept).
    public var text: String

    public static let maxDepth = 32
    /// Attributes of one element at most (each is compared with those before it).
    public static let maxAttributes = 32

    public init(name: String, attributes: [(name: String, value: String)] = [], children: [XMLElement] = [], text: String = "") {
        self.name = name
        self.attributes = attributes
        self.children = children
        self.text = text
    }

    public static func == (lhs: XMLElement, rhs: XMLElement) -> Bool {
        lhs.name == rhs.name && lhs.children == rhs.children && lhs.text == rhs.text
            && lhs.attributes.map(\.name) == rhs.attributes.map(\.name) && lhs.attributes.map(\.value) == rhs.attributes.map(\.value)
    }

    public func attribute(_ name: String) -> String? {
        attributes.first { $0.name == name }?.value
    }

    public func child(_ name: String) -> XMLElement? {
        children.first { $0.name == name }
    }

    /// The child's text, trimmed; nil without such a child.
    public func childText(_ name: String) -> String? {
        child(name).map { $0.text.trimmingXMLSpace }
    }

    public struct Failure: Error, Equatable, Sendable {
        public let message: String
        public let offset: Int
    }

    /// The document's root element.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<XMLElement, Failure> {
        var reader = Reader(bytes: bytes)
        do throws(Failure) {
            reader.skipProlog()
            try reader.skipMisc()
            let root = try reader.element(depth: 0)
            try reader.skipMisc()
            guard reader.offset == bytes.count else { throw reader.failure("content after the root element") }
            return .success(root)
        } catch {
            return .failure(error)
        }
    }

    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var offset = 0

        func failure(_ message: String) -> Failure { Failure(message: message, offset: offset) }

        func starts(with text: String) -> Bool {
            let utf8 = Array(text.utf8)
            return offset + utf8.count <= bytes.count && Array(bytes[offset..<offset + utf8.count]) == utf8
        }

        mutating func skipSpace() {
            while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
        }

        mutating func skipProlog() {
            // A byte order mark, then an optional <?xml …?>.
            if starts(with: "\u{FEFF}") { offset += 3 }
            skipSpace()
        }

        /// Comments, processing instructions and white space between elements.
        mutating func skipMisc() throws(Failure) {
            while true {
                skipSpace()
                if starts(with: "<!--") {
                    try skip(past: "-->")
                } else if starts(with: "<?") {
                    try skip(past: "?>")
                } else if starts(with: "<!") {
                    throw failure("DOCTYPE and other declarations are not accepted")
                } else {
                    return
                }
            }
        }

        mutating func skip(past end: String) throws(Failure) {
            let utf8 = Array(end.utf8)
            while offset + utf8.count <= bytes.count {
                if Array(bytes[offset..<offset + utf8.count]) == utf8 {
                    offset += utf8.count
                    return
                }
                offset += 1
            }
            throw failure("unterminated \(end == "-->" ? "comment" : "section")")
        }

        static func isNameByte(_ byte: UInt8, first: Bool) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"), UInt8(ascii: ":"), 0x80...0xFF:
                return true
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."):
                return !first
            default:
                return false
            }
        }

        mutating func name() throws(Failure) -> String {
            let start = offset
            while offset < bytes.count, Self.isNameByte(bytes[offset], first: offset == start) { offset += 1 }
            guard offset > start, offset - start <= 256 else { throw failure("expected a name") }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        }

        mutating func element(depth: Int) throws(Failure) -> XMLElement {
            guard depth < XMLElement.maxDepth else { throw failure("elements nested more than \(XMLElement.maxDepth) deep") }
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "<") else { throw failure("expected an element") }
            offset += 1
            var element = XMLElement(name: try name())
            while true {
                skipSpace()
                guard offset < bytes.count else { throw failure("unterminated start tag") }
                if bytes[offset] == UInt8(ascii: "/") {
                    guard offset + 1 < bytes.count, bytes[offset + 1] == UInt8(ascii: ">") else { throw failure("expected />") }
                    offset += 2
                    return element
                }
                if bytes[offset] == UInt8(ascii: ">") {
                    offset += 1
                    break
                }
                let attribute = try name()
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: "=") else { throw failure("expected = after an attribute name") }
                offset += 1
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") || bytes[offset] == UInt8(ascii: "'") else {
                    throw failure("expected a quoted attribute value")
                }
                let quote = bytes[offset]
                offset += 1
                let value = try characters(until: quote)
                offset += 1
                guard element.attributes.count < XMLElement.maxAttributes else { throw failure("more than \(XMLElement.maxAttributes) attributes") }
                guard element.attribute(attribute) == nil else { throw failure("attribute \(attribute) given twice") }
                element.attributes.append((attribute, value))
            }
            var text = ""
            while true {
                guard offset < bytes.count else { throw failure("unterminated element <\(element.name)>") }
                if starts(with: "</") {
                    offset += 2
                    let closing = try name()
                    guard closing == element.name else { throw failure("</\(closing)> closes <\(element.name)>") }
                    skipSpace()
                    guard offset < bytes.count, bytes[offset] == UInt8(ascii: ">") else { throw failure("expected >") }
                    offset += 1
                    element.text = text
                    return element
                }
                if starts(with: "<!--") {
                    try skip(past: "-->")
                } else if starts(with: "<![CDATA[") {
                    offset += 9
                    let start = offset
                    try skip(past: "]]>")
                    text += String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<offset - 3]), as: UTF8.self)
                } else if starts(with: "<?") {
                    try skip(past: "?>")
                } else if bytes[offset] == UInt8(ascii: "<") {
                    element.children.append(try self.element(depth: depth + 1))
                } else {
                    text += try characters(until: UInt8(ascii: "<"))
                }
            }
        }

        /// Text up to (not including) `end`, entities replaced.
        mutating func characters(until end: UInt8) throws(Failure) -> String {
            var result: [UInt8] = []
            while offset < bytes.count, bytes[offset] != end {
                let byte = bytes[offset]
                if byte == UInt8(ascii: "<") { throw failure("< inside a value") }
                if byte == UInt8(ascii: "&") {
                    guard let semicolon = bytes[offset...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { throw failure("unterminated entity") }
                    let entity = String(decoding: UnsafeBufferPointer(rebasing: bytes[offset + 1..<semicolon]), as: UTF8.self)
                    switch entity {
                    case "lt": result.append(UInt8(ascii: "<"))
                    case "gt": result.append(UInt8(ascii: ">"))
                    case "amp": result.append(UInt8(ascii: "&"))
                    case "quot": result.append(UInt8(ascii: "\""))
                    case "apos": result.append(UInt8(ascii: "'"))
                    default:
                        var number: UInt32?
                        if entity.hasPrefix("#x") { number = UInt32(entity.dropFirst(2), radix: 16) } else if entity.hasPrefix("#") { number = UInt32(entity.dropFirst()) }
                        guard let number, let scalar = Unicode.Scalar(number), number != 0 else { throw failure("unknown entity &\(entity);") }
                        result += Array(String(Character(scalar)).utf8)
                    }
                    offset = semicolon + 1
                    continue
                }
                result.append(byte)
                offset += 1
            }
            guard offset < bytes.count else { throw failure("unterminated text") }
            return String(decoding: result, as: UTF8.self)
        }
    }
}

extension String {
    var trimmingXMLSpace: String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\n" || first == "\t" || first == "\r" { scalars = scalars.dropFirst() }
        while let last = scalars.last, last == " " || last == "\n" || last == "\t" || last == "\r" { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
