"""Defaults shared by the classical baselines, so that every one reads the same inputs."""

# The inputs of the reference results: 256 Morgan bits + RDKit descriptors per drug, and the 500
# most variable genes of the cell line's expression (the full default features are 4,625 columns,
# which makes a kernel SVM fold take over half an hour on two cores for no measured gain).
CHEM_EXPR = ("chem:n_bits=256", "expression:n_genes=500")
