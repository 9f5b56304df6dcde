# marketdata: holds no secrets in Vault; this policy exists so the service has an identity of its own.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
