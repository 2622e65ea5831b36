"""GLAM (Liu et al., MIDL 2021) as a camkit plugin: global multi-scale maps, one patch, a local segmenter."""
