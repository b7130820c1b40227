/* The checks-10k scenario's target: answers every request with 200 "ok" over keep-alive
 * (libevent's evhttp, as cheap as the bare baseline) and records when each check's path
 * (/c/N) was asked, so that bench/check_target.py can judge how regular the runs were. On
 * SIGTERM it writes {"/c/N": [monotonic seconds, ...], ...} to the output file and exits.
 *
 *     check_target -p PORT -o FILE -n CHECKS
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hits { double *times; size_t count, capacity; };

static struct hits *table;
static long checks;
static const char *out_path;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void answer(struct evhttp_request *req, void *arg) {
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    if (strncmp(uri, "/c/", 3) == 0) {
        char *end;
        long index = strtol(uri + 3, &end, 10);
        if (end != uri + 3 && index >= 0 && index < checks) {
            struct hits *h = &table[index];
            if (h->count == h->capacity) {
                h->capacity = h->capacity ? 2 * h->capacity : 16;
                h->times = realloc(h->times, h->capacity * sizeof(double));
            }
            h->times[h->count++] = now();
        }
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evbuffer_add(evhttp_request_get_output_buffer(req), "ok", 2);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void stop(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    FILE *out = fopen(out_path, "w");
    if (out == NULL) { perror(out_path); exit(1); }
    fputc('{', out);
    int first = 1;
    for (long i = 0; i < checks; i++) {
        if (table[i].count == 0) continue;
        fprintf(out, "%s\"/c/%ld\":[", first ? "" : ",", i);
        first = 0;
        for (size_t j = 0; j < table[i].count; j++) fprintf(out, "%s%.6f", j ? "," : "", table[i].times[j]);
        fputc(']', out);
    }
    fputs("}\n", out);
    fclose(out);
    event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
    int port = 0, option;
    while ((option = getopt(argc, argv, "p:o:n:")) != -1) {
        switch (option) {
        case 'p': port = atoi(optarg); break;
        case 'o': out_path = optarg; break;
        case 'n': checks = atol(optarg); break;
        default: fprintf(stderr, "usage: check_target -p PORT -o FILE -n CHECKS\n"); return 2;
        }
    }
    if (port <= 0 || out_path == NULL || checks <= 0) { fprintf(stderr, "usage: check_target -p PORT -o FILE -n CHECKS\n"); return 2; }
    table = calloc(checks, sizeof *table);
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_gencb(http, answer, NULL);
    if (evhttp_bind_socket(http, "127.0.0.1", port) != 0) { fprintf(stderr, "check_target: cannot bind port %d\n", port); return 1; }
    struct event *term = evsignal_new(base, SIGTERM, stop, base);
    event_add(term, NULL);
    event_base_dispatch(base);
    return 0;
}
