# execution: the only service that can read a tenant's exchange credentials, and only read them.
path "secret/data/tenants/+/exchange" {
  capabilities = ["read"]
}
path "secret/metadata/tenants/+/exchange" {
  capabilities = ["read"]
}
# Paper accounts' keys: execution opens each tenant's paper account on the simulator itself and is
# the only reader and writer of its key (no other policy names paper/).
path "secret/data/paper/+/exchange" {
  capabilities = ["create", "update", "read"]
}
path "secret/metadata/paper/+/exchange" {
  # delete: a deleted tenant's paper key is destroyed with the rest of its data
  capabilities = ["read", "delete"]
}
# Its own service identity: signs the short-lived token it presents to other platform services.
path "transit/sign/service-execution-rs256" {
  capabilities = ["update"]
}
path "transit/keys/service-execution-rs256" {
  capabilities = ["read"]
}
