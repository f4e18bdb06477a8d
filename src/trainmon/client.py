"""The CLI's HTTP client: every failure becomes one readable line (``ClientError``)."""

from __future__ import annotations

from typing import Any

import httpx

from trainmon.local import read_token, server_url


class ClientError(Exception):
    """One line for the terminal."""


class ApiClient:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 10.0):
        self.url = (url or server_url()).rstrip("/")
        self.token = token if token is not None else read_token()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ClientError(
                f"cannot reach the trainmon server at {self.url} (is `trainmon serve` running?)"
            ) from None
        except httpx.HTTPError as exc:
            raise ClientError(f"request to {self.url} failed: {exc}") from None
        if response.status_code >= 400:
            raise ClientError(error_message(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{self.url} did not answer with JSON: is it a trainmon server?"
            ) from None


def error_message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['message']} (HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        return f"the server answered HTTP {response.status_code}"
