"""The gunicorn worker class docs/deployment.md shows, for tests/e2e/test_django_serving.py."""

from uvicorn_worker import UvicornWorker


class HubbubWorker(UvicornWorker):
    CONFIG_KWARGS = {
        "ws": "hubbub.uvicorn_ws:WebSocketProtocol",
        "ws_max_size": 1024 * 1024,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 30.0,
        "ws_per_message_deflate": False,
        "lifespan": "off",
        "proxy_headers": True,
    }
