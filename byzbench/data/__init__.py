"""Datasets (tensors in memory) and partitions across workers."""
