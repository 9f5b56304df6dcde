#!/bin/sh
# Example: what an operator runs once against Vault (or OpenBao, with `bao` instead of `vault`) so
# each Tradebot service can log in with its own ServiceAccount and gets only its own policy.
# The chart's vault.configure Job does the same after install when given a token.
#
#   VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=... sh k8s/vault-roles.example.sh
#
# RELEASE and NAMESPACE must match `helm install RELEASE ... -n NAMESPACE`; ServiceAccounts are
# named <release>-tradebot-<service> (just <release>-<service> when the release name contains "tradebot").
set -eu
RELEASE=${RELEASE:-tradebot}
NAMESPACE=${NAMESPACE:-tradebot}
PREFIX=${PREFIX:-tradebot-}
POLICIES=${POLICIES:-helm/tradebot/files/vault-policies}
case "$RELEASE" in *tradebot*) ACCOUNT_PREFIX="$RELEASE" ;; *) ACCOUNT_PREFIX="$RELEASE-tradebot" ;; esac

# The engines and the auth method the services use (skip any that already exist).
vault secrets enable -path=secret kv-v2 || true
vault secrets enable transit || true
vault auth enable kubernetes || true
# Run inside the cluster (e.g. from the Vault pod) so the API server address and CA are the pod's.
vault write auth/kubernetes/config kubernetes_host="https://kubernetes.default.svc"

# Signing keys that never leave Vault (RS256): users' access tokens, and one identity per gRPC service.
for key in tenants-jwt-rs256 service-tenants-rs256 service-marketdata-rs256 service-strategy-rs256 service-execution-rs256; do
  vault read "transit/keys/$key" >/dev/null 2>&1 || vault write -f "transit/keys/$key" type=rsa-2048
done

for service in tenants marketdata strategy execution dashboard exchangesim; do
  vault policy write "$PREFIX$service" "$POLICIES/$service.hcl"
  vault write "auth/kubernetes/role/$PREFIX$service" \
    bound_service_account_names="$ACCOUNT_PREFIX-$service" \
    bound_service_account_namespaces="$NAMESPACE" \
    token_policies="$PREFIX$service" \
    token_ttl=1h
done
