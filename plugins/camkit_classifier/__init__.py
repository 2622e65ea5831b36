"""camkit's pooled classifier: any registered backbone, a spatial pooling head and a linear classifier."""
