#if canImport(Glibc)
import Glibc
#endif
import Access

/// The ACL file: any bytes load as a policy or are refused with a reason that never quotes a
/// token; a loaded policy answers any presented token.
func fuzzACL(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let policy = try AccessPolicy.parse(bytes)
        _ = policy.caller(token: bytes.prefix(64))
        _ = policy.caller(token: nil as [UInt8]?)
        _ = policy.caller(certificateNames: [String(decoding: bytes.prefix(32), as: UTF8.self)])
        for entry in policy.entries { _ = entry.grant.mayWrite("payment-api"); _ = entry.grant.summary }
    } catch {
        guard !error.message.isEmpty else { fatalError("a refusal without a reason") }
    }
    return 0
}

/// libFuzzer's entry point, for its own `main` (which the linker may take).
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    return fuzzACL(data, size)
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
    return fuzzACL(data, size)
})
