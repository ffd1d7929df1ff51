"""Swagger UI at /docs works without internet: every file it needs is served by the app,
and the page runs no inline script, so its Content-Security-Policy allows this origin only."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from lxml import html

from api.app import create_app
from api.docs_page import ASSETS
from api.openapi import DOCS_PATH, OPENAPI_PATH

APP = create_app()
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


@pytest.fixture(scope="module")
def page():
    response = APP.test_client().get(DOCS_PATH)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response


def fetch(url: str):
    """The answer to GET ``url``, its body read and its file closed."""
    response = APP.test_client().get(url)
    response.get_data()
    response.close()
    return response


def referenced_urls(document) -> list[str]:
    """Every URL the page loads: scripts, stylesheets, images, anything with src or href."""
    return [value for element in document.iter() for value in element.values() if "/" in value]


def test_the_page_loads_only_files_of_this_origin(page):
    document = html.fromstring(page.get_data(as_text=True))
    urls = [url for url in referenced_urls(document) if url != OPENAPI_PATH]
    assert urls, "the page references no asset"
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url
        assert url.startswith(f"{DOCS_PATH}/"), url


def test_every_referenced_file_answers_200_with_its_media_type(page):
    document = html.fromstring(page.get_data(as_text=True))
    urls = [
        element.get("src") or element.get("href")
        for element in document.xpath("//script | //link[@rel='stylesheet']")
    ]
    assert {url.rsplit("/", 1)[1] for url in urls} == set(ASSETS)
    for url in urls:
        response = fetch(url)
        assert response.status_code == 200, url
        assert response.mimetype == MEDIA_TYPES[url[url.rindex(".") :]], url
        assert len(response.get_data()) > 100, url
        assert "max-age" in response.headers["Cache-Control"], url


def test_the_page_has_no_inline_script_and_a_strict_content_security_policy(page):
    document = html.fromstring(page.get_data(as_text=True))
    scripts = document.xpath("//script")
    assert scripts
    for script in scripts:
        assert script.get("src")
        assert not (script.text or "").strip()
    assert not [
        name for element in document.iter() for name in element.attrib if name.startswith("on")
    ]
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"


def test_the_initialiser_starts_swagger_ui_on_the_served_document(page):
    document = html.fromstring(page.get_data(as_text=True))
    (root,) = document.xpath("//*[@id='swagger-ui']")
    assert root.get("data-openapi-url") == OPENAPI_PATH
    script = fetch(f"{DOCS_PATH}/swagger-init.js").get_data(as_text=True)
    assert "SwaggerUIBundle(" in script
    assert "dataset.openapiUrl" in script


def test_swagger_ui_is_a_release_that_reads_openapi_3_1():
    bundle = fetch(f"{DOCS_PATH}/swagger-ui-bundle.js").get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle
    # isOAS31 is how Swagger UI 5 tells an OpenAPI 3.1 document; 4.x has no such check.
    assert "isOAS31" in bundle


@pytest.mark.parametrize("name", ["index.html", "..%2Fopenapi.py", "swagger-ui.js", "LICENSE"])
def test_only_the_listed_files_are_served(name):
    response = APP.test_client().get(f"{DOCS_PATH}/{name}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
