"""HTTP routes: Neuronpedia's graph-server paths (`neuronpedia`) and our `/v1` (`graphs`)."""
