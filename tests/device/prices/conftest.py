from __future__ import annotations

from collections.abc import AsyncIterator

import entsoe.entsoe
import pytest

from tests.conftest import free_port
from tests.device.prices.entsoe_api import Api, serve


@pytest.fixture
async def entsoe_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    """The fake ENTSO-E API on 127.0.0.1; entsoe-py is pointed at it as ENTSOE_ENDPOINT_URL would."""
    api = Api()
    port = free_port()
    runner = await serve(api, port)
    # entsoe-py reads ENTSOE_ENDPOINT_URL once, at import, into this module global; the prices
    # worker (a child process) reads the variable
    monkeypatch.setattr(entsoe.entsoe, "URL", f"http://127.0.0.1:{port}/api")
    monkeypatch.setenv("ENTSOE_ENDPOINT_URL", f"http://127.0.0.1:{port}/api")
    yield api
    api.hang_s = 0
    await runner.cleanup()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """entsoe-py's own warnings (bs4 parses its XML as HTML; pandas 3 deprecations) are not ours."""
    for item in items:
        if "tests/device/prices" in str(item.path):
            item.add_marker(pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore:The inplace keyword"))
