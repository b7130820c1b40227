#if canImport(Glibc)
import Glibc
#endif
@testable import Persistence
import Registry

/// The journal record decoder: any payload decodes to an entry or is refused with a reason;
/// what decodes encodes and decodes back to the same entry, and applies to a registry.
func fuzzJournal(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let payload = Array(UnsafeBufferPointer(start: data, count: size))[...]
    _ = JournalCodec.isRecord(payload)
    _ = JournalCodec.decodeSnapshotHeader(payload)
    _ = JournalCodec.decodeSnapshotTrailer(payload)
    do {
        let entry = try JournalCodec.decode(payload, wallOffset: 0)
        let again = try JournalCodec.decode(JournalCodec.encode(entry, wallOffset: 0)[...], wallOffset: 0)
        guard again == entry else { fatalError("a decoded record did not survive encoding: \(entry) became \(again)") }
    } catch {
        guard !error.reason.isEmpty else { fatalError("a refusal without a reason") }
    }
    return 0
}

/// libFuzzer's entry point, for its own `main` (which the linker may take).
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    return fuzzJournal(data, size)
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
    return fuzzJournal(data, size)
})
