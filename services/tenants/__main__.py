"""`python -m services.tenants`: run the tenants service alone (settings from the environment)."""

from services.common.runtime import run_service
from services.tenants.server import PUBLIC_METHODS, Settings, setup

# Tenants checks API tokens against its own database on every call, not by asking itself.
# It issues the tokens: it serves without waiting to fetch its own signing keys.
run_service(
    "tenants",
    Settings,
    setup,
    public_methods=PUBLIC_METHODS,
    check_api_tokens_with_tenants=False,
    token_issuer=True,
)
