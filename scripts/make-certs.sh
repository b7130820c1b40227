#!/usr/bin/env bash
# make-certs.sh DIR [CLIENT...]: a private CA and certificates for trying TLS and mutual TLS
# on this machine (the tests and the benchmark use it too). Not for production: there, use
# your organisation's CA or cert-manager; the registry only needs PEM files.
#
# DIR gets (EC P-256 keys, PEM):
#   ca.pem                    the CA (give it to clients: curl --cacert, registryctl --cacert)
#   server.pem server-key.pem for the registry: CN localhost, names localhost, 127.0.0.1, ::1
#                             and the DNS names in SERVER_NAMES (comma-separated), if set
#   client-NAME.pem/-key.pem  one client certificate per NAME (CN=NAME, URI spiffe://registry/NAME)
#   etcd-client.pem/-key.pem  a client certificate with no CN (URI spiffe://registry/etcd-client):
#                             etcd's JSON gateway refuses client certificates that carry a CN
#                             when its auth is on, so the registry's certificate for etcd has none
#   expired.pem expired-key.pem   a client certificate of the CA that expired in 2020
#   stranger.pem stranger-key.pem a client certificate of another CA (other-ca.pem)
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [CLIENT...]}
shift
clients=("$@")
((${#clients[@]})) || clients=(payments)
command -v openssl >/dev/null || { echo "make-certs: openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# Two CAs: ours, and another one whose clients ours must refuse.
for ca in ca other-ca; do
    key "$ca-key.pem"
    openssl req -x509 -new -key "$ca-key.pem" -sha256 -days 3650 -subj "/CN=service-registry $ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$ca.pem" 2>/dev/null
done

# sign NAME CA SUBJECT EXTENSIONS: NAME.pem and NAME-key.pem signed by CA, valid for a year.
sign() {
    key "$1-key.pem"
    openssl req -new -key "$1-key.pem" -subj "$3" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" -CAcreateserial -sha256 -days 365 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
names=DNS:localhost,IP:127.0.0.1,IP:::1
IFS=, read -r -a extra <<<"${SERVER_NAMES:-}"
for name in "${extra[@]}"; do [[ -z $name ]] || names+=",DNS:$name"; done
# clientAuth too: etcd's JSON gateway dials its own server with the server's certificate, which
# a member with --client-cert-auth checks as a client's (the tests run etcd with this one).
sign server ca "/CN=localhost" "$(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE' "$names")"
for name in "${clients[@]}"; do
    sign "client-$name" ca "/CN=$name" "$(printf 'subjectAltName=URI:spiffe://registry/%s\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE' "$name")"
done
sign etcd-client ca "/O=service-registry" "$(printf 'subjectAltName=URI:spiffe://registry/etcd-client\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE')"
sign stranger other-ca "/CN=stranger" "$(printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE')"

# An expired client certificate: only `openssl ca` sets dates in the past.
mkdir -p expired-ca
: > expired-ca/index.txt
echo 01 > expired-ca/serial
cat > expired-ca/ca.cnf <<CNF
[ca]
default_ca = expired
[expired]
dir = expired-ca
database = expired-ca/index.txt
serial = expired-ca/serial
new_certs_dir = expired-ca
certificate = ca.pem
private_key = ca-key.pem
default_md = sha256
policy = anything
x509_extensions = client
[anything]
commonName = supplied
[client]
extendedKeyUsage = clientAuth
basicConstraints = CA:FALSE
CNF
key expired-key.pem
openssl req -new -key expired-key.pem -subj "/CN=${clients[0]}" -out expired.csr 2>/dev/null
openssl ca -batch -config expired-ca/ca.cnf -startdate 20200101000000Z -enddate 20200201000000Z \
    -in expired.csr -out expired.pem >/dev/null 2>&1
rm -rf expired-ca expired.csr ca.srl other-ca.srl
chmod 600 ./*-key.pem
echo "make-certs: CA, server and client certificates in $dir (ca.pem, server.pem, client-${clients[0]}.pem, ...)"
