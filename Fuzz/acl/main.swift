import FuzzSupport
import Access

/// The ACL file: any bytes load as a policy or are refused with a reason that never quotes a
/// token; a loaded policy answers any presented token.
func fuzzACL(_ data: UnsafePointer<UInt8>, _ size: Int) {
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
}

runFuzzer(fuzzACL)
