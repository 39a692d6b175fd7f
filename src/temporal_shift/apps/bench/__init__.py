"""Benchmarks of the shift's cost and the data path, each a function `tsm bench` calls:
`overhead` (TSN vs TSM inference), `train` (training steps and memory), `compare` (the paper's
efficiency table), `two_stream` (the optical-flow baseline's cost), `data` (loading speed)."""
