"""The paper's experiments on the built-in synthetic data: `demo` (TSN vs TSM, `tsm demo`) and
`reproduce` (shift proportion, placement, online, the zoo), run side by side (`side_by_side`)."""
