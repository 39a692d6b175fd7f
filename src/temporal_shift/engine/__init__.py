"""What is done with a model: the training config and loop, evaluation under the paper's test
protocols, prediction, export to deployment formats, compiled inference."""
