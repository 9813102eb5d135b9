"""Entry point: ``python -m ingest``."""

import uvicorn

from ingest.app import create_app
from shared.config import get_settings
from shared.logging import setup_logging

if __name__ == "__main__":
    cfg = get_settings()
    setup_logging("ingest", cfg.log_level)
    uvicorn.run(create_app(cfg), host=cfg.http_host, port=cfg.ingest_port, log_level="warning",
                access_log=False)
