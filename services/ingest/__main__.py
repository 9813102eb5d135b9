"""Entry point: ``python -m ingest``."""

from ingest.admin_signing import parse_signing_keys
from ingest.ingest_settings import IngestSettings
from shared.chat_platform.from_settings import WEBHOOK_SECRETS, tiktok_client_secrets
from shared.secrets_policy import Origin, SecretSetting
from shared.service_runtime import ServiceRuntime, run_service

# Webhook signatures, the platform client (buyer names), the admin API's keys.
SECRETS = (
    *WEBHOOK_SECRETS,
    *tiktok_client_secrets(),
    SecretSetting("admin_token_keys", Origin.GENERATED, ring=parse_signing_keys),
    SecretSetting("admin_operator_token", Origin.GENERATED),
)

SETTINGS = IngestSettings  # the one settings class this service reads


async def main(runtime: ServiceRuntime, cfg: IngestSettings) -> None:
    """The FastAPI app starts its Kafka producer and platform client in its lifespan and
    serves /healthz and /metrics itself."""
    from ingest.app import create_app

    await runtime.serve_http(create_app(cfg), cfg.http_host, cfg.ingest_port, lifespan="on")


if __name__ == "__main__":
    cfg = SETTINGS()
    run_service("ingest", cfg, SECRETS, lambda runtime: main(runtime, cfg))
