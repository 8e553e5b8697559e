"""Data layer: raw IDX files in, validated tensors and a fixed validation split out.

``idx`` reads and writes IDX files; ``manifest`` names the four MNIST files and records which
ones a run used; ``download`` (mirrors, a local copy) and ``synthetic`` (generated digits) make
them; ``prepare`` turns them into tensors and the validation split. Every step writes atomically
and records hashes, so a rerun either reproduces the same bytes or fails with a message naming
the file to fix.
"""
