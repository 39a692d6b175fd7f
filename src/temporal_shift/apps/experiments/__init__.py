"""The paper's experiments on the built-in synthetic data, all on one training recipe (`recipe`):
`demo` (TSN vs TSM, `tsm demo`) and `reproduce` (shift proportion, placement, online, the zoo,
`tsm reproduce`), their runs trained side by side (`side_by_side`)."""
