from services.common.db import run_migrations_env
from services.strategy.models import metadata

run_migrations_env(metadata)
