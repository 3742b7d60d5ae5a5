def test_list_starts_empty(client):
    response = client.get("/api/v1/pipelines/")
    assert response.status_code == 200
    assert response.get_data() == b"[]"


def test_created_pipeline_runs_to_success(create_pipeline, run_to_end, sql):
    pipeline = create_pipeline()
    run = run_to_end(pipeline["id"])
    source_rows = sql("SELECT count(*) FROM content.film_work")[0][0]
    assert run["status"] == "SUCCESS", run
    assert run["rows_read"] == run["rows_written"] == source_rows
    assert sql("SELECT count(*) FROM analytics.film_dim")[0][0] == source_rows
