import CLibevent

/// libevent's own error replies, re-rendered as this API's JSON error.
///
/// evhttp answers some requests before our callback sees them: a body over
/// `evhttp_set_max_body_size` (413), headers over the limit or an unparsable request line
/// (400). libevent 2.1.12 (Debian's) offers no hook for those replies (2.2 adds
/// `evhttp_set_errorcb`) and always sends an HTML page through `evhttp_send_error`, which
/// it calls through the PLT. Defining `evhttp_send_error` here, exported from the
/// executable (see the linker flag in Package.swift), makes the dynamic linker bind
/// libevent's calls to this function instead: the standard ELF interposition rule. The
/// server tests assert the JSON bodies, so a libevent built without interposition fails
/// them rather than silently sending HTML.
@_cdecl("evhttp_send_error")
public func libeventErrorReply(_ request: UnsafeMutablePointer<evhttp_request>?, _ status: Int32,
                        _ reason: UnsafePointer<CChar>?) {
    guard let request else { return }
    var status = status
    let message: String
    var allow: String?
    if let broken = Transport.connection(of: request)?.rejectionBeingAnswered() {
        // evhttp is refusing the transport's poison: answer with the rule that was broken.
        status = broken.status
        message = broken.message
        allow = broken.allow
        Transport.answeredByLibevent[status, default: 0] += 1
        send(request, status: status, message: message, allow: allow)
        return
    }
    Transport.answeredByLibevent[status, default: 0] += 1
    switch status {
    case 413:
        message = "request body is over the server's limit (--max-body-bytes)"
    case 400:
        message = "the request could not be parsed as HTTP/1.x: malformed request line, malformed headers "
            + "or headers over the server's limit (--max-header-bytes)"
    case 501:
        message = "method not implemented"
    default:
        message = reason.map { String(cString: $0) } ?? "request failed"
    }
    send(request, status: status, message: message, allow: allow)
}

private func send(_ request: UnsafeMutablePointer<evhttp_request>, status: Int32, message: String, allow: String?) {
    CLibevent_evhttp_request_default_version(request)
    let headers = evhttp_request_get_output_headers(request)
    evhttp_clear_headers(headers)
    evhttp_add_header(headers, "Content-Type", "application/json")
    if let allow { evhttp_add_header(headers, "Allow", allow) }
    // After a protocol error the connection's state is unknown: close it, as evhttp would.
    evhttp_add_header(headers, "Connection", "close")
    let body = Response.errorBody(message)
    body.withUnsafeBytes { bytes in
        _ = evbuffer_add(evhttp_request_get_output_buffer(request), bytes.baseAddress, bytes.count)
    }
    AccessLog.current?.answeredByLibevent(request, status: status, bytes: body.count)
    // A refusal's status may differ from the one evhttp meant; evhttp supplies the phrase
    // (from its table, or the one given for statuses its table lacks).
    sendReply(request, status)
}
