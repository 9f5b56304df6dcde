# execution: the only service that can read a tenant's exchange credentials, and only read them.
path "secret/data/tenants/+/exchange" {
  capabilities = ["read"]
}
path "secret/metadata/tenants/+/exchange" {
  capabilities = ["read"]
}
