#if canImport(Glibc)
import Glibc
#endif
import FuzzSupport
@testable import Persistence
import Registry

/// Recovery of a data directory: the input becomes a log file (and, after a 0xFF 0xFE
/// marker, a snapshot), with every piece between 0xFF 0xFD markers framed with a valid CRC so
/// that the decoder behind the checksums is reached; then the directory is loaded without
/// and with repair. Either it loads, or it is refused with a reason; never a trap.
nonisolated(unsafe) private var directoryPath: String = {
    var template = Array("/tmp/registry-fuzz-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    return String(cString: made)
}()

private func framed(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    var pieces = [ArraySlice<UInt8>]()
    var start = bytes.startIndex
    var index = bytes.startIndex
    while index < bytes.endIndex {
        if bytes[index] == 0xFF, index + 1 < bytes.endIndex, bytes[index + 1] == 0xFD {
            pieces.append(bytes[start..<index])
            index += 2
            start = index
        } else {
            index += 1
        }
    }
    pieces.append(bytes[start..<bytes.endIndex])
    for (number, piece) in pieces.enumerated() {
        if number % 2 == 1 {
            var writer = ByteWriter()
            Frames.appendFrame(to: &writer) { $0.bytes += piece }
            out += writer.bytes
        } else {
            out += piece
        }
    }
    return out
}

private func write(_ bytes: [UInt8], to name: String) {
    let path = directoryPath + "/" + name
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard descriptor >= 0 else { fatalError("cannot write \(path)") }
    _ = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
}

func fuzzRecovery(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let input = Array(UnsafeBufferPointer(start: data, count: size))[...]
    var log = input
    var snapshot: ArraySlice<UInt8>?
    if let marker = input.indices.first(where: { $0 + 1 < input.endIndex && input[$0] == 0xFF && input[$0 + 1] == 0xFE }) {
        log = input[..<marker]
        snapshot = input[(marker + 2)...]
    }
    // Each run starts from an empty directory.
    for name in ["log-00000000000000000001.log", "snapshot-00000000000000000001.snap", "log-00000000000000000002.log"] {
        unlink(directoryPath + "/" + name)
    }
    if let snapshot {
        write(framed(snapshot), to: DataDirectory.snapshotName(1))
        write(framed(log), to: DataDirectory.logName(1))
    } else {
        write(framed(log), to: DataDirectory.logName(1))
    }
    for repair in [false, true] {
        // Repair copies damaged files aside: start each load from the same files.
        guard let directory = try? DataDirectory.open(directoryPath) else { fatalError("cannot open \(directoryPath)") }
        var registry = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), journaling: true))
        do {
            _ = try Recovery.load(directory, into: &registry, now: Instant(nanoseconds: 1_000_000_000), wallOffset: 0, repair: repair)
        } catch {
            guard !error.message.isEmpty else { fatalError("a refusal without a reason") }
        }
        // Whatever loaded is a registry that serves.
        _ = registry.serviceSummaries(now: Instant(nanoseconds: 2_000_000_000))
    }
}

runFuzzer(fuzzRecovery)
