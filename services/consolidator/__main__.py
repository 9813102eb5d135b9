"""Entry point: ``python -m consolidator`` (a faust worker)."""

from consolidator.consolidator_settings import ConsolidatorSettings
from shared.secrets_policy import SecretSetting
from shared.service_runtime import start_checked

SERVICE = "consolidator"
SECRETS: tuple[SecretSetting, ...] = ()  # it reads no secret; checked like every service
SETTINGS = ConsolidatorSettings  # the one settings class this service reads


if __name__ == "__main__":
    cfg = SETTINGS()
    start_checked(SERVICE, cfg, SECRETS)  # before a port is opened or Kafka touched
    from consolidator.app import Consolidator

    Consolidator(cfg).run()
