"""Data pipeline: list files, preparation, decoding, sampling, transforms, datasets and
the built-in synthetic temporal dataset. Import from the submodules, e.g.
``from temporal_shift.data.dataset import VideoDataset``."""
