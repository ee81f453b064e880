"""Server-rendered pages answer and show the data (the browser tests check the JavaScript)."""

MODEL, SOURCE = "webapi-test", "6-res-jb"


async def test_home_lists_models_and_counts(api) -> None:
    client, _ = api
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert MODEL in page.text and f'href="/{MODEL}/{SOURCE}"' in page.text


async def test_feature_page_shows_dashboard(api) -> None:
    client, _ = api
    page = await client.get(f"/{MODEL}/{SOURCE}/2")
    assert page.status_code == 200
    text = page.text
    assert "mentions of cats #2" in text
    assert 'class="tok"' in text and "data-v=" in text and "rgba(249, 115, 22" in text
    assert '<svg class="chart"' in text
    assert " kitten" in text and " dogs" in text  # logit lens
    assert f'href="/{MODEL}/{SOURCE}/3"' in text  # similar features
    assert "Activations by interval" in text


async def test_source_search_steer_lists_admin_pages(api) -> None:
    client, _ = api
    source = await client.get(f"/{MODEL}/{SOURCE}")
    assert source.status_code == 200 and "mentions of cats #0" in source.text
    for path, needle in (
        ("/search?q=cats", 'value="cats"'),
        ("/steer", "Generate"),
        (f"/steer?model={MODEL}&source={SOURCE}&index=4", '"index": "4"'),
        ("/lists", "Lists"),
        ("/admin", "Imports"),
        ("/vectors", f'<option value="{MODEL}"'),
        ("/upload", "upload-batch"),
        ("/my", "Saved steering runs"),
    ):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert needle in page.text, path


async def test_missing_pages_are_404_not_500(api) -> None:
    client, _ = api
    for path in (
        f"/{MODEL}/{SOURCE}/99999",
        f"/{MODEL}/{SOURCE}/abc",
        "/nope/nothing",
        "/lists/doesnotexist",
        "/steer/not-a-saved-run",
    ):
        assert (await client.get(path)).status_code == 404, path


async def test_search_query_is_escaped(api) -> None:
    client, _ = api
    page = await client.get("/search", params={"q": '"><script>alert(1)</script>'})
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    # the query is on the page, as text inside its attribute
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text


async def test_browsers_get_an_html_error_page(api) -> None:
    client, _ = api
    page = await client.get(f"/{MODEL}/{SOURCE}/99999", headers={"accept": "text/html"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "no feature" in page.text and 'id="error"' in page.text
    api_answer = await client.get(
        f"/api/feature/{MODEL}/{SOURCE}/99999", headers={"accept": "text/html"}
    )
    assert api_answer.json() == {"detail": f"no feature {MODEL}/{SOURCE}/99999"}


async def test_a_feature_with_ragged_imported_lists_still_renders(api, db_sessionmaker) -> None:
    """Token lists longer than their value lists (seen in imported rows) show what pairs up."""
    from sqlalchemy import delete

    from interpedia_db.models import Activation, Feature

    async with db_sessionmaker.begin() as session:
        session.add(
            Feature(
                model_id=MODEL, source_id=SOURCE, index=990, pos_str=[" cat", " dog"], pos_values=[]
            )
        )
        await session.flush()  # the activation refers to the feature
        session.add(
            Activation(
                model_id=MODEL,
                source_id=SOURCE,
                index=990,
                tokens=["a", " cat", " sat"],
                values=[0.0, 2.0],
                max_value=2.0,
                max_value_token_index=1,
            )
        )
    client, _ = api
    try:
        page = await client.get(f"/{MODEL}/{SOURCE}/990")
    finally:  # other tests count this source's features
        async with db_sessionmaker.begin() as session:
            await session.execute(
                delete(Activation).where(Activation.model_id == MODEL, Activation.index == 990)
            )
            await session.execute(
                delete(Feature).where(Feature.model_id == MODEL, Feature.index == 990)
            )
    assert page.status_code == 200
    assert 'data-v="2.000"' in page.text and " sat" not in page.text
