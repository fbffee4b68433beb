"""`archbench fidelity`: does a cheap signal rank this space's architectures as a costlier training
does? Rank correlations with bootstrap intervals (Abdelfattah et al., ICLR 2021; Ru et al., ICLR 2021).
"""
