"""Applications built on the library: streaming recognition (`stream`), the browser demo
server (`serve`), benchmarks (`bench`) and the paper's experiments (`experiments`)."""
