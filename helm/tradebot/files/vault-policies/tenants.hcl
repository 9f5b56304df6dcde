# tenants: stores, rotates and destroys exchange credentials, but can never read a secret back.
path "secret/data/tenants/+/exchange" {
  capabilities = ["create", "update"]
}
path "secret/metadata/tenants/+/exchange" {
  # version numbers and deletion of all versions; metadata holds no secret material
  capabilities = ["read", "delete"]
}
path "secret/destroy/tenants/+/exchange" {
  capabilities = ["update"]
}
# Access tokens are signed inside Vault (RS256): the private key never leaves it.
path "transit/sign/tenants-jwt-rs256" {
  capabilities = ["update"]
}
path "transit/keys/tenants-jwt-rs256" {
  capabilities = ["read"]
}
# The Ed25519 key of installations from before RS256: no longer signs, still published while it
# exists so the API tokens it signed keep verifying.
path "transit/keys/tenants-jwt" {
  capabilities = ["read"]
}
# Its own service identity: signs the short-lived token it presents to other platform services.
path "transit/sign/service-tenants-rs256" {
  capabilities = ["update"]
}
path "transit/keys/service-tenants-rs256" {
  capabilities = ["read"]
}
# GetJwks publishes every service's public key, so all services verify service tokens locally.
path "transit/keys" {
  capabilities = ["list"]
}
path "transit/keys/service-*" {
  capabilities = ["read"]
}
# TOTP secrets are kept in the database only as ciphertext of this derived key (context = user id);
# the service creates the key at first start and encrypts/decrypts inside Vault.
path "transit/keys/tenants-totp" {
  capabilities = ["create", "update", "read"]
}
path "transit/encrypt/tenants-totp" {
  capabilities = ["update"]
}
path "transit/decrypt/tenants-totp" {
  capabilities = ["update"]
}
