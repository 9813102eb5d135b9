"""Entry point: ``python -m consolidator`` (a faust worker)."""

from shared.config import get_settings
from shared.logging import setup_logging

if __name__ == "__main__":
    setup_logging("consolidator", get_settings().log_level)
    from consolidator.app import app

    app.main()
