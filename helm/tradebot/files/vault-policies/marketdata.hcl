# marketdata: holds no secrets in Vault; this policy exists so the service has an identity of its own.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
# Its own service identity: signs the short-lived token it presents to other platform services.
path "transit/sign/service-marketdata-rs256" {
  capabilities = ["update"]
}
path "transit/keys/service-marketdata-rs256" {
  capabilities = ["read"]
}
