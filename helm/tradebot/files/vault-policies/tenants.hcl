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
# Access tokens are signed inside Vault: the private key never leaves it.
path "transit/sign/tenants-jwt" {
  capabilities = ["update"]
}
path "transit/keys/tenants-jwt" {
  capabilities = ["read"]
}
