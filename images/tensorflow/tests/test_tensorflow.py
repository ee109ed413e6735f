"""In-image smoke test for tensorflow, run inside the container by tests/images.

Promises: Keras trains one step of a small model (on the GPU when TensorFlow
sees one); with EXPECT_GPU=1 a GPU must be visible. Prints one JSON line
(whether a GPU is visible); exit status 0 on success.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # after TF_CPP_MIN_LOG_LEVEL: it must be set before TensorFlow loads
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
if os.environ.get("EXPECT_GPU") == "1":
    assert gpus, "a GPU was expected (EXPECT_GPU=1) but TensorFlow sees none"

tf.keras.utils.set_random_seed(0)
model = tf.keras.Sequential(
    [tf.keras.Input((8,)), tf.keras.layers.Dense(16, "relu"), tf.keras.layers.Dense(1)]
)
model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
x, y = np.random.randn(32, 8).astype("float32"), np.random.randn(32, 1).astype("float32")
before = float(model.evaluate(x, y, verbose=0))
model.train_on_batch(x, y)
after = float(model.evaluate(x, y, verbose=0))
assert after < before, (before, after)
print(
    json.dumps(
        {
            "tensorflow": tf.__version__,
            "built_with_cuda": tf.test.is_built_with_cuda(),
            "gpu_visible": bool(gpus),
            "gpus": len(gpus),
            "loss": [round(before, 4), round(after, 4)],
        }
    )
)
