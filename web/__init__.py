"""The web process: a Flask app that takes uploads, queues jobs and serves results."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from flask import Flask
from PIL import Image

from imgjobs import config, storage
from web import api, auth, clients, errors, health, limits, metrics, openapi, origins, page, store
from web.uploads import UploadRequest


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with `test_config` overriding it."""
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.config.from_mapping(config.from_env())
    app.config["MAX_FORM_MEMORY_SIZE"] = api.MAX_FIELD_BYTES  # a text field or a part's headers
    if test_config:
        app.config.update(test_config)
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_UPLOAD_MB"] * 1024 * 1024)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    storage.from_config(app.config).ensure()
    _limit_pillow(app.config["MAX_PIXELS"])
    clients.trusted_networks(app.config["FORWARDED_ALLOW_IPS"])  # a bad value fails here, not per request
    logging.basicConfig(level=logging.INFO)

    errors.init_app(app)
    store.init_app(app)
    auth.init_app(app)  # before anything else that reads the caller's key (limits)
    origins.init_app(app)
    limits.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    metrics.init_app(app)
    page.init_app(app)
    return app


def _limit_pillow(max_pixels: int) -> None:
    """Make Pillow refuse images above the pixel cap instead of only warning."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
