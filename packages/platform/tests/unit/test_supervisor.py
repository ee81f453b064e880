"""The supervisor's services: which it starts, from where, and how they find each other."""


def test_the_graph_service_and_its_worker_run_from_the_graph_environment(tmp_path) -> None:
    """The supervisor starts `interpedia-graph` from the graph environment when it is built."""
    from interpedia_core.settings import CommonSettings
    from interpedia_platform.supervisor import graph_services, platform_services, service_urls_env

    settings = CommonSettings(graph_env=tmp_path / ".venv-graph")
    assert graph_services(settings) == []  # not built: the platform runs without graphs
    command = tmp_path / ".venv-graph" / "bin" / "interpedia-graph"
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    services = {s.name: s for s in platform_services(settings)}
    assert services["graph"].command == [str(command), "serve"]
    assert services["graph"].port() == 5005
    assert services["graph-worker"].command == [str(command), "worker"]
    assert service_urls_env(list(services.values()))["INTERPEDIA_WEBAPI_GRAPH_URL"].endswith(
        ":5005"
    )
