"""Wait as long as a training run would, then save the settings a real run would have used.

The agent may change the constants below; prepare.py scores the saved settings.
"""

import json
import os
import time

from prepare import SLEEP_SECONDS

LEARNING_RATE = 0.01
MOMENTUM = 0.5
WIDTH = 16

started = time.time()
time.sleep(SLEEP_SECONDS)
settings = {"learning_rate": LEARNING_RATE, "momentum": MOMENTUM, "width": WIDTH}
with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "settings.json"), "w") as handle:
    json.dump(settings, handle)
print(f"slept {time.time() - started:.2f}s; saved {settings}")
