#ifndef CLIBEVENT_SHIM_H
#define CLIBEVENT_SHIM_H

// libc first: importing event2/ before these makes `import Foundation` clash over fd_set.
#include <sys/types.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <signal.h>
#include <time.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

// Function-like macros are invisible to Swift; these are their typed equivalents.
static inline struct event *CLibevent_evtimer_new(struct event_base *base,
    event_callback_fn cb, void *arg) {
    return evtimer_new(base, cb, arg);
}

static inline struct event *CLibevent_evsignal_new(struct event_base *base,
    int signum, event_callback_fn cb, void *arg) {
    return evsignal_new(base, signum, cb, arg);
}

static inline int CLibevent_evtimer_add(struct event *ev, const struct timeval *tv) {
    return evtimer_add(ev, tv);
}

static inline int CLibevent_evtimer_del(struct event *ev) {
    return evtimer_del(ev);
}

// evhttp leaves the protocol version at 0.0 when the request line did not parse; the
// error reply must still go out as HTTP/1.1. These touch the struct from http_struct.h.
static inline void CLibevent_evhttp_request_default_version(struct evhttp_request *req) {
    if (req->major == 0 && req->minor == 0) {
        req->major = 1;
        req->minor = 1;
    }
}

#endif
