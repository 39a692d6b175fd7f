"""Checkpoint files: our format, importers of other layouts, loading a file as a model.

- `format`: our self-describing file (`save_checkpoint`, `read_checkpoint`, `CheckpointError`);
- `importers`: the reference release's, MMAction2's and the online demo's layouts onto our models;
- `loading`: `load_checkpoint(path) -> LoadedCheckpoint`, the one loader every command uses.
"""
