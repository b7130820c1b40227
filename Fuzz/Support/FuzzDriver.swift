#if canImport(Glibc)
import Glibc
#endif

/// What every fuzzer's `main.swift` shares: libFuzzer's driver, run from the fuzzer's own
/// `main` (SwiftPM gives an executable a `main` of its own, so libFuzzer's cannot be used),
/// and its entry point, for the linker that pulls in libFuzzer's `main` object anyway.
nonisolated(unsafe) private var target: ((_ data: UnsafePointer<UInt8>, _ size: Int) -> Void)?

/// libFuzzer's entry point: one input for the fuzzer `runFuzzer` was given.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let target else { return 0 }
    target(data, size)
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// Runs libFuzzer (its command line is the process's) with `fuzz` as the target, and exits
/// with its status. `fuzz` traps on a broken invariant; returning means the input was fine.
public func runFuzzer(_ fuzz: @escaping (_ data: UnsafePointer<UInt8>, _ size: Int) -> Void) -> Never {
    target = fuzz
    var arguments = CommandLine.argc
    var vector = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&arguments, &vector) { data, size in testOneInput(data, size) })
}
