"""Entry for Tortoise's CLI: `python -m tortoise -c config.tortoise_cli.TORTOISE_ORM makemigrations`."""

from config.settings import load_settings

TORTOISE_ORM = load_settings().tortoise_config()
