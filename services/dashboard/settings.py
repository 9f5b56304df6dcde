"""Dashboard settings: where it listens and where the platform's gRPC services are."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    dashboard_host: str = Field("127.0.0.1", description="Address the dashboard's web server binds to")
    dashboard_port: int = Field(8501, ge=1, le=65535, description="Dashboard HTTP port")
    marketdata_addr: str = Field("", description="host:port of the marketdata service")
    strategy_addr: str = Field("", description="host:port of the strategy service")
    execution_addr: str = Field("", description="host:port of the execution service")

    def service_addresses(self) -> dict[str, str]:
        return {
            "tenants": self.tenants_addr,
            "marketdata": self.marketdata_addr,
            "strategy": self.strategy_addr,
            "execution": self.execution_addr,
        }
