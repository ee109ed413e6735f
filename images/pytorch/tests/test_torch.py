"""In-image smoke test for pytorch, run inside the container by tests/images.

Promises: torch trains one step of a small model on the best device there is
(the GPU when visible); NVIDIA_VISIBLE_DEVICES and NVIDIA_DRIVER_CAPABILITIES
are set for the NVIDIA container runtime; with EXPECT_GPU=1 a GPU must be
visible; with EXPECT_CUDA_BUILD=1 torch must be a CUDA build. Prints one JSON
line (device, whether a GPU is visible); exit status 0 on success.
"""

import json
import os

import torch

assert os.environ.get("NVIDIA_VISIBLE_DEVICES") == "all"
assert "compute" in os.environ.get("NVIDIA_DRIVER_CAPABILITIES", "")
gpu = torch.cuda.is_available()
if os.environ.get("EXPECT_GPU") == "1":
    assert gpu, "a GPU was expected (EXPECT_GPU=1) but torch sees none"
if os.environ.get("EXPECT_CUDA_BUILD") == "1":
    assert torch.version.cuda, "torch is not a CUDA build"
device = torch.device("cuda" if gpu else "cpu")

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
inputs, targets = torch.randn(32, 8, device=device), torch.randn(32, 1, device=device)
before = torch.nn.functional.mse_loss(model(inputs), targets)
optimizer.zero_grad()
before.backward()
optimizer.step()
after = torch.nn.functional.mse_loss(model(inputs), targets)
assert after.item() < before.item(), (before.item(), after.item())
print(
    json.dumps(
        {
            "torch": torch.__version__,
            "cuda_build": torch.version.cuda,
            "gpu_visible": gpu,
            "gpus": torch.cuda.device_count(),
            "device": str(device),
            "loss": [round(before.item(), 4), round(after.item(), 4)],
        }
    )
)
