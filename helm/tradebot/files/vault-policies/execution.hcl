# execution: the only service that can read a tenant's exchange credentials, and only read them.
path "secret/data/tenants/+/exchange" {
  capabilities = ["read"]
}
path "secret/metadata/tenants/+/exchange" {
  capabilities = ["read"]
}
# Its own service identity: signs the short-lived token it presents to other platform services.
path "transit/sign/service-execution" {
  capabilities = ["update"]
}
path "transit/keys/service-execution" {
  capabilities = ["read"]
}
