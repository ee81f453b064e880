"""Exports for the formats tests: one source with features, activations and explanations."""

from pathlib import Path

from interpedia_formats.neuronpedia_export import (
    ExportWriter,
    NpActivation,
    NpExplanation,
    NpModel,
    NpNeuron,
    NpSource,
    NpSourceRelease,
    NpSourceSet,
)

MODEL, SOURCE = "gpt2-small", "6-res-jb"


def write_export(root: Path, n_features: int = 2100, acts: int = 2) -> Path:
    with ExportWriter(root, MODEL, SOURCE) as writer:
        writer.write_model(NpModel(id=MODEL, displayName="GPT-2 Small", layers=12))
        writer.write_release(NpSourceRelease(name="res-jb", description="Joseph's SAEs"))
        writer.write_sourceset(NpSourceSet(modelId=MODEL, name="res-jb", releaseName="res-jb"))
        writer.write_source(
            NpSource(
                modelId=MODEL, id=SOURCE, setName="res-jb", saelensConfig={"d_sae": n_features}
            )
        )
        for i in range(n_features):
            writer.write_feature(
                NpNeuron(
                    modelId=MODEL,
                    layer=SOURCE,
                    index=i,
                    maxActApprox=float(i),
                    frac_nonzero=0.01,
                    pos_str=["a", "b"],
                    pos_values=[1.0, 0.5],
                    neg_str=["c"],
                    neg_values=[-1.0],
                    freq_hist_data_bar_heights=[1, 2],
                    freq_hist_data_bar_values=[0.1, 0.2],
                    topkCosSimIndices=[i, i + 1],
                    topkCosSimValues=[1.0, 0.3],
                )
            )
            for j in range(acts):
                writer.write_activation(
                    NpActivation(
                        id=f"act-{i}-{j}",
                        modelId=MODEL,
                        layer=SOURCE,
                        index=str(i),
                        tokens=["The", " cat", " «é»"],
                        values=[0.0, 2.5, 1.0],
                        maxValue=2.5,
                        maxValueTokenIndex=1,
                        minValue=0.0,
                        dataIndex=j,
                    )
                )
            writer.write_explanation(
                NpExplanation(
                    id=f"exp-{i}",
                    modelId=MODEL,
                    layer=SOURCE,
                    index=i,
                    description=f"cats number {i}",
                    typeName="oai_token-act-pair",
                    embedding=[0.1] * 4,
                )
            )
    return root / MODEL / SOURCE
