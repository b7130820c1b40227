#if canImport(Glibc)
import Glibc
#endif
import JSON

/// The strict JSON parser: any bytes either parse or fail with an offset inside the input;
/// parsing is deterministic; and the writer's output for a parsed string parses back to it.
func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    do {
        let value = try JSONParser.parse(bytes)
        guard (try? JSONParser.parse(bytes)) == value else { fatalError("the same bytes parsed two ways") }
        if case .string(let text) = value {
            var writer = JSONWriter()
            writer.string(text)
            guard (try? JSONParser.parse(writer.bytes)) == .string(text) else { fatalError("a written string did not parse back") }
        }
    } catch {
        guard error.offset >= 0, error.offset <= size else { fatalError("error offset \(error.offset) outside \(size) bytes") }
    }
    return 0
}

/// libFuzzer's entry point, for its own `main` (which the linker may take).
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    return fuzzJSON(data, size)
}

// libFuzzer's driver, called from here: SwiftPM gives an executable a `main` of its own.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

var arguments = CommandLine.argc
var vector = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &vector) { data, size in
    guard let data else { return 0 }
    return fuzzJSON(data, size)
})
