#if canImport(Glibc)
import Glibc
#endif
import HTTPParsing

/// Percent-decoding of a path segment: a result is valid UTF-8 and decoding never grows the
/// input; text without '%' decodes to itself.
func fuzzPercent(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch PercentDecoding.decode(bytes) {
    case .success(let text):
        guard text.utf8.count <= size else { fatalError("decoding grew \(size) bytes to \(text.utf8.count)") }
        if !bytes.contains(UInt8(ascii: "%")), Array(text.utf8) != Array(bytes) { fatalError("plain text changed") }
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
    return 0
}

/// libFuzzer's entry point, for its own `main` (which the linker may take).
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    return fuzzPercent(data, size)
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
    return fuzzPercent(data, size)
})
