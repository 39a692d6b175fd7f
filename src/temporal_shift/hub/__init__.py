"""Published weights: the registry of the reference release's checkpoints (data), their class
names, the cached and verified download, and building a model loaded with them."""
