#if canImport(Glibc)
import Glibc
#endif
import Registry
import RegistryWire

/// The request bodies: a registration and an instance reference (every combination of its
/// status rules) decode or are refused with a message; what decodes meets the core's rules.
func fuzzBodies(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch RegistrationRequest.decode(bytes) {
    case .success(let request):
        // A decoded registration must be one the core accepts or refuses by its own rules,
        // without trapping.
        var registry = Registry(heartbeatTimeout: .seconds(30))
        _ = registry.register(service: request.service, id: request.id, address: request.address, fields: request.fields,
                              now: Instant(nanoseconds: 1_000_000_000))
    case .failure(let problem):
        guard !problem.message.isEmpty else { fatalError("a refusal without a message") }
    }
    for (required, allowed) in [(false, false), (false, true), (true, true)] {
        if case .failure(let problem) = InstanceReference.decode(bytes, statusRequired: required, statusAllowed: allowed),
           problem.message.isEmpty {
            fatalError("a refusal without a message")
        }
    }
    return 0
}

/// libFuzzer's entry point, for its own `main` (which the linker may take).
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    return fuzzBodies(data, size)
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
    return fuzzBodies(data, size)
})
