"""Data pipeline: list files, preparation, frame sources (folder | video | camera) over
decoding, sampling, transforms, datasets and their factory by modality, optical flow
(``flow/``) and the built-in synthetic temporal dataset. Import from the submodules, e.g.
``from temporal_shift.data.factory import build_dataset``."""
