"""Wire models of the graph service: the source of truth for `schemas/graph.json`.

`neuronpedia` holds the routes Neuronpedia's graph server has, with its paths and its
snake_case field names (no aliasing: Neuronpedia publishes these names as they are);
`graphs` holds our own `/v1` routes (jobs, stored graphs, transcoder sets), which use
the same names for the same things. The graph JSON itself is Neuronpedia's format
(`interpedia_formats.neuronpedia_graph`), not modelled here.
"""
