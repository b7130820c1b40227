#!/usr/bin/env bash
# make-secrets.sh DIR: what the secure deployments mount as Secrets, made on this machine:
#
#   ca.pem                 the private CA (clients trust it: REGISTRY_CACERT); its key is
#                          not kept, so no more certificates can be signed with it
#   server.pem server-key.pem  the registry's certificate, for localhost, registry (Compose),
#                          service-registry[.NAMESPACE.svc] and each replica's pod name on the
#                          headless Service (Kubernetes)
#   acl.json               the ACL file: tokens as SHA-256 digests only, so it is not itself
#                          a secret; ops is the operator, services may write and read every
#                          service, anonymous requests may read
#   ops.token services.token replica.token   the tokens themselves (give ops.token to
#                          people and Prometheus, services.token to the services; replica.token
#                          is what cluster replicas send each other)
#
# Existing files are kept: run it again and nothing changes. For production, use your own
# CA (or cert-manager) and hand out tokens per team with write patterns of their own.
set -euo pipefail
dir=${1:?usage: make-secrets.sh DIR}
namespace=${NAMESPACE:-default}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir"
if [[ ! -f $dir/server.pem ]]; then
    SERVER_NAMES="registry,service-registry,service-registry.$namespace.svc,service-registry.$namespace.svc.cluster.local,*.service-registry-headless,*.service-registry-headless.$namespace.svc" \
        bash "$root/scripts/make-certs.sh" "$dir" >/dev/null
    # Only what a deployment needs stays.
    (cd "$dir" && rm -f client-*.pem expired*.pem stranger*.pem other-ca*.pem)
fi
for name in ops services replica; do
    [[ -f $dir/$name.token ]] || (umask 077 && openssl rand -hex 32 >"$dir/$name.token")
done
digest() { tr -d '\n' <"$dir/$1.token" | sha256sum | cut -d' ' -f1; }
cat >"$dir/acl.json" <<JSON
{"tokens": [
   {"name": "ops", "sha256": "$(digest ops)", "operator": true},
   {"name": "services", "sha256": "$(digest services)", "write": ["*"], "read": ["*"]},
   {"name": "replicas", "sha256": "$(digest replica)", "operator": true}],
 "anonymous": {"read": ["*"]}}
JSON
# The folder keeps the files from other users of this machine; the files themselves must be
# readable by the containers' user (uid 10001), since Compose mounts a file secret as it is.
# (Kubernetes copies them into Secrets; see deploy-minikube.sh.)
chmod 700 "$dir"
chmod 644 "$dir"/*.pem "$dir"/*.token "$dir/acl.json"
rm -f "$dir/ca-key.pem"
echo "make-secrets: $dir holds ca.pem, server.pem, server-key.pem, acl.json, ops.token, services.token, replica.token"
