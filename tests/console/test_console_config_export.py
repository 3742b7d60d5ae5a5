"""The list page's Export: the YAML of the pipelines the page shows, its filters and page included."""
from __future__ import annotations

import yaml

from tests.conftest import FILM_DIM_QUERY


def names_in(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/yaml"
    assert response.headers["Content-Disposition"] == 'attachment; filename="etl.yaml"'
    return [p["name"] for p in yaml.safe_load(response.get_data(as_text=True))["pipelines"]]


def test_export_follows_the_lists_filters_and_page(client, create_pipeline):
    for name in ("alpha", "beta", "gamma"):
        create_pipeline(name=name, source_query=FILM_DIM_QUERY)
    create_pipeline(name="other", target_table="analytics.film_rating_agg",
                    source_query="SELECT film_id, 1.0 AS avg_rating, 1 AS ratings_count FROM ugc.ratings")
    page = client.get("/?q=a&target=analytics.film_dim").get_data(as_text=True)
    assert 'id="export-link" href="/pipelines/export.yaml?q=a&amp;target=analytics.film_dim"' in page
    assert names_in(client.get("/pipelines/export.yaml")) == ["alpha", "beta", "gamma", "other"]
    assert names_in(client.get("/pipelines/export.yaml?q=a&target=analytics.film_dim")) == ["alpha", "beta", "gamma"]
    assert names_in(client.get("/pipelines/export.yaml?limit=2&after=alpha")) == ["beta", "gamma"]
    assert client.get("/pipelines/export.yaml?limit=0").status_code == 400
