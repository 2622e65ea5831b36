"""CBIS-DDSM (TCIA) as a camkit dataset plugin: ``cbis-ddsm``."""
