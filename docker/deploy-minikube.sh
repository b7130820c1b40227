#!/usr/bin/env bash
# One-command deployment to Minikube, as the seed had: starts Minikube if it is not
# running, builds the image inside it, applies the manifests, waits for the rollout, and
# prints how to reach the registry.
#
#   docker/deploy-minikube.sh            deploy (or update) everything
#   docker/deploy-minikube.sh --cluster  the same in cluster mode: three etcd members and
#                                        three registry replicas (docker/k8s-cluster/)
#   docker/deploy-minikube.sh --delete   remove it again (the data volumes too)
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null || { echo "deploy-minikube: $1 is not installed; $2" >&2; exit 1; }
}
need minikube "see https://minikube.sigs.k8s.io/docs/start/"
need kubectl "see https://kubernetes.io/docs/tasks/tools/"
need docker "minikube's docker-env needs the docker CLI"

if [[ ${1:-} == --delete ]]; then
    kubectl delete -f docker/k8s/ --ignore-not-found
    kubectl delete -f docker/k8s-cluster/ --ignore-not-found
    kubectl delete pvc -l app.kubernetes.io/name=service-registry --ignore-not-found
    kubectl delete pvc -l app.kubernetes.io/name=etcd --ignore-not-found
    kubectl delete secret service-registry-tls service-registry-acl service-registry-ca \
        service-registry-services-token service-registry-replica-token --ignore-not-found
    exit 0
fi
# The registry's manifests: one replica on a volume, or three on etcd. The example
# services and the NodePort are the same for both.
manifests=(-f docker/k8s/registry.yaml)
if [[ ${1:-} == --cluster ]]; then
    # A single registry's StatefulSet cannot be turned into the cluster's in place.
    kubectl delete -f docker/k8s/registry.yaml --ignore-not-found
    manifests=(-f docker/k8s-cluster/etcd.yaml -f docker/k8s-cluster/registry.yaml)
fi
manifests+=(-f docker/k8s/registry-nodeport.yaml -f docker/k8s/example-services.yaml)

if ! minikube status >/dev/null 2>&1; then
    echo "Starting Minikube..."
    minikube start
fi

# TLS and tokens: the Secrets the manifests mount, made once (docker/make-secrets.sh) and
# kept in docker/secrets on this machine. Existing Secrets are left as they are.
secrets=docker/secrets
bash docker/make-secrets.sh "$secrets"
kubectl get secret service-registry-tls >/dev/null 2>&1 ||
    kubectl create secret generic service-registry-tls --type=kubernetes.io/tls \
        --from-file=tls.crt="$secrets/server.pem" --from-file=tls.key="$secrets/server-key.pem" \
        --from-file=ca.crt="$secrets/ca.pem"
kubectl get secret service-registry-acl >/dev/null 2>&1 ||
    kubectl create secret generic service-registry-acl --from-file=acl.json="$secrets/acl.json"
kubectl get secret service-registry-ca >/dev/null 2>&1 ||
    kubectl create secret generic service-registry-ca --from-file=ca.crt="$secrets/ca.pem"
kubectl get secret service-registry-services-token >/dev/null 2>&1 ||
    kubectl create secret generic service-registry-services-token --from-file=token="$secrets/services.token"
kubectl get secret service-registry-replica-token >/dev/null 2>&1 ||
    kubectl create secret generic service-registry-replica-token --from-file=token="$secrets/replica.token"

echo "Building service-registry:latest inside Minikube's Docker..."
eval "$(minikube docker-env)"
docker build -f docker/Dockerfile -t service-registry:latest .

echo "Applying ${manifests[*]}..."
kubectl apply "${manifests[@]}"
[[ ${1:-} == --cluster ]] && kubectl rollout status statefulset/etcd --timeout=180s
# A rebuilt image has the same tag: restart so that the pods run it.
kubectl rollout restart statefulset/service-registry deployment/user-service deployment/payment-service >/dev/null
kubectl rollout status statefulset/service-registry --timeout=180s
kubectl rollout status deployment/user-service --timeout=120s
kubectl rollout status deployment/payment-service --timeout=120s

ip=$(minikube ip)
cat <<INFO

The registry is up.

  Inside the cluster:   https://service-registry:5443 (and http://service-registry:5001)
  From this machine:    https://$ip:30443 (and http://$ip:30001)
  CA and tokens:        $secrets/ca.pem, $secrets/ops.token (operator), $secrets/services.token

Try:
  curl http://$ip:30001/health
  curl --cacert $secrets/ca.pem --resolve service-registry:30443:$ip https://service-registry:30443/services
  curl -H "Authorization: Bearer \$(cat $secrets/ops.token)" http://$ip:30001/metrics
  curl http://$ip:30001/discover/user-service
  curl -N http://$ip:30001/watch/user-service      # follow changes; Ctrl-C to stop
  kubectl scale deployment/user-service --replicas=4   # and watch them register
  kubectl exec statefulset/service-registry -- registryctl services
  kubectl logs statefulset/service-registry            # JSON lines

Remove it all with: docker/deploy-minikube.sh --delete
INFO
