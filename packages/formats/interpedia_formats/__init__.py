"""File formats: Neuronpedia bulk exports (read and write).

`neuronpedia_export` holds the row models, `ExportWriter` and the streaming
reader; `locations` lists and streams exports from folders, http(s) and S3;
`transcoder_set` is circuit-tracer's transcoder-set layout, shared by trainer and graph.
"""
