"""Mask samplers: turn examples into fixed-shape masked batches on the host."""
