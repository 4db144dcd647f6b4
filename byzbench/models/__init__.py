"""Model builders: ``build(input_shape, num_classes, **kw) -> nn.Module``, vmap-safe."""
