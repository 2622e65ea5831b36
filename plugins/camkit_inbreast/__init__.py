"""INbreast as a camkit dataset plugin: ``inbreast``."""
