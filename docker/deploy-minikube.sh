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

  Inside the cluster:   http://service-registry:5001
  From this machine:    http://$ip:30001

Try:
  curl http://$ip:30001/health
  curl http://$ip:30001/services
  curl http://$ip:30001/discover/user-service
  curl -N http://$ip:30001/watch/user-service      # follow changes; Ctrl-C to stop
  kubectl scale deployment/user-service --replicas=4   # and watch them register
  kubectl exec statefulset/service-registry -- registryctl services
  kubectl logs statefulset/service-registry            # JSON lines

Remove it all with: docker/deploy-minikube.sh --delete
INFO
