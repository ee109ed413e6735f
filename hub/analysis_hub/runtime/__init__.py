"""One machine's sandbox: Unix users, cgroups, image environments and the GPU pool."""
