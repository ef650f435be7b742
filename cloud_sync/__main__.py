"""The ``nattery-cloud`` program (its entry point is :func:`run`), also ``python -m cloud_sync``.

Importing the command's modules creates about 100,000 objects that stay for the life of the
process. The collector is off while they are made (walking them again and again as they grew
cost 0.12-0.18 s of CPU per start) and they are frozen after (the collector no longer walks them:
each full collection while serving is cheaper, and exiting took about 0.13 s less).
"""

import gc

gc.disable()
try:
    from cloud_sync.cli import main
finally:
    gc.enable()
gc.freeze()


def run() -> None:
    main(prog_name="nattery-cloud")


if __name__ == "__main__":
    run()
