#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

// OpenSSL 3 from Debian's libssl-dev: what the TLS target uses, with typed equivalents of
// the function-like macros and the stack accessors Swift cannot see.
#include <string.h>
#include <time.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static inline int COpenSSL_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static inline void COpenSSL_server_options(SSL_CTX *ctx) {
    // A client that closes without close_notify (most do) ends the connection; OpenSSL 3
    // would otherwise answer it with a decode_error alert.
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE
        | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // No read-ahead, though it would read a record's header and body in one system call:
    // libevent 2.1's bufferevent_openssl waits for the socket to be readable, and bytes
    // OpenSSL read ahead (a request sent with the handshake's last message) would wait there
    // unseen until the client gave up.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
}

static inline void COpenSSL_client_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
}

static inline int COpenSSL_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// The certificate's notAfter as seconds since 1970 (0 if it cannot be read).
static inline long long COpenSSL_not_after(const X509 *certificate) {
    const ASN1_TIME *time = X509_get0_notAfter(certificate);
    struct tm parts;
    memset(&parts, 0, sizeof parts);
    if (time == NULL || ASN1_TIME_to_tm(time, &parts) != 1) return 0;
    return (long long)timegm(&parts);
}

/// The names a peer certificate carries, for mapping it to permissions: its subject CN, then
/// every DNS and URI subject alternative name, each followed by a NUL, written into `buffer`.
/// Returns the bytes written; names that do not fit, or hold a NUL, are left out.
static inline size_t COpenSSL_certificate_names(const X509 *certificate, char *buffer, size_t capacity) {
    size_t used = 0;
    if (certificate == NULL) return 0;
    X509_NAME *subject = X509_get_subject_name(certificate);
    int position = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    if (position >= 0) {
        ASN1_STRING *value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, position));
        unsigned char *text = NULL;
        int length = ASN1_STRING_to_UTF8(&text, value);
        if (length > 0 && (size_t)length + 1 <= capacity - used && memchr(text, 0, (size_t)length) == NULL) {
            memcpy(buffer + used, text, (size_t)length);
            used += (size_t)length;
            buffer[used++] = 0;
        }
        OPENSSL_free(text);
    }
    GENERAL_NAMES *names = X509_get_ext_d2i(certificate, NID_subject_alt_name, NULL, NULL);
    if (names != NULL) {
        for (int index = 0; index < sk_GENERAL_NAME_num(names); index++) {
            const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, index);
            const ASN1_IA5STRING *value = NULL;
            if (name->type == GEN_DNS) value = name->d.dNSName;
            else if (name->type == GEN_URI) value = name->d.uniformResourceIdentifier;
            if (value == NULL) continue;
            int length = ASN1_STRING_length(value);
            const unsigned char *text = ASN1_STRING_get0_data(value);
            if (length <= 0 || (size_t)length + 1 > capacity - used || memchr(text, 0, (size_t)length) != NULL) continue;
            memcpy(buffer + used, text, (size_t)length);
            used += (size_t)length;
            buffer[used++] = 0;
        }
        GENERAL_NAMES_free(names);
    }
    return used;
}

#endif
