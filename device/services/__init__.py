"""One entry module per process: ``bridge`` (``nattery bridge``), ``local`` (``nattery run
--simulate``), ``prices_worker`` (the app's short-lived child for the price source and the price
forecast); the app service's composition is :mod:`device.app` (``nattery app``).

``device/cli.py`` imports a service's module only inside its command, so each process loads only
what its service needs: the bridge never loads the planner, the forecast, the prices, the web
page or the data-frame libraries, the app never pandas, entsoe-py or LiteRT
(``tests/device/test_services.py`` checks it).
"""
