"""Shipping to devices: bundles, Triton model repositories, DeepStream configs."""
